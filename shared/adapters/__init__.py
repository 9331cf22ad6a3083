"""The edges: Event Grid events, the ARM reader, the offline reader, the store and the notifiers.
Implement the app's ports; import app/ ports and core/."""
