"""The use case (auditor), the ports it talks to, and the app settings. Imports only core/."""
