"""Alert notifiers (Teams, Slack, generic JSON webhooks, console) behind the Notifier port."""
