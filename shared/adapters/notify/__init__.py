"""Alert notifiers (Teams, Slack, generic JSON webhooks, console) behind the Notifier port."""

from shared.adapters.notify.deliver import ConsoleNotifier, WebhookNotifier, notifiers_from_settings
from shared.adapters.notify.render import CHANNELS, RenderError, render, render_json, render_main, render_text

__all__ = [
    "CHANNELS",
    "ConsoleNotifier",
    "RenderError",
    "WebhookNotifier",
    "notifiers_from_settings",
    "render",
    "render_json",
    "render_main",
    "render_text",
]
