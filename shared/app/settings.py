"""App settings, read once from the environment into one dataclass (nothing is read at import time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class ConfigurationError(ValueError):
    """An app setting is missing or malformed; the message names the setting."""


def _arm_endpoint(value: str | None) -> str:
    """ARM_ENDPOINT: an https URL without path (sovereign clouds: https://management.chinacloudapi.cn, ...)."""
    from urllib.parse import urlsplit

    text = (value or "").strip().rstrip("/") or "https://management.azure.com"
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ConfigurationError(f"ARM_ENDPOINT must be an https URL without a path, like "
                                 f"https://management.azure.com, not {text!r}")
    return text


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, unit: str) -> float:
    """A setting holding a number of `unit` between `low` and `high` (ConfigurationError naming it otherwise)."""
    text = (env.get(name) or "").strip() or str(default)
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of {unit}, not {text!r}") from None
    if not low <= value <= high:  # also refuses NaN
        raise ConfigurationError(f"{name} must be between {low:g} and {high:g} {unit}, not {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    subscriptions: tuple[str, ...] = ()
    topology_snapshot: str | None = None  # offline: read this snapshot file as the "live" topology
    client_id: str | None = None
    policy_file: str | None = None
    notify_accepted: bool = False
    recheck_delay_seconds: int = 120
    arm_endpoint: str = "https://management.azure.com"  # ARM and Resource Graph; the token scope follows it
    management_group: str | None = None  # also read every subscription under this management group
    webhook_timeout_seconds: float = 10.0  # one webhook request
    webhook_max_wait_seconds: float = 15.0  # all waits (retries, Retry-After) of one delivery
    health_alert_after_minutes: float = 60.0  # incomplete reads / no complete reconcile for this long: alarm
    raw: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold secrets: never log it

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        subs = tuple(s.strip() for s in (env.get("WATCHED_SUBSCRIPTIONS") or "").replace(";", ",").split(",")
                     if s.strip())
        delay_text = env.get("RECHECK_DELAY_SECONDS") or "120"
        try:
            delay = int(delay_text)
        except ValueError:
            raise ConfigurationError(
                f"RECHECK_DELAY_SECONDS must be a whole number of seconds, not {delay_text!r}") from None
        if not 1 <= delay <= 7 * 24 * 3600:
            raise ConfigurationError("RECHECK_DELAY_SECONDS must be between 1 and 604800")
        settings = cls(
            subscriptions=subs,
            topology_snapshot=env.get("TOPOLOGY_SNAPSHOT") or None,
            client_id=env.get("AZURE_CLIENT_ID") or None,
            policy_file=env.get("POLICY_FILE") or None,
            notify_accepted=_flag(env.get("NOTIFY_ACCEPTED")),
            recheck_delay_seconds=delay,
            arm_endpoint=_arm_endpoint(env.get("ARM_ENDPOINT")),
            management_group=(env.get("MANAGEMENT_GROUP") or "").strip() or None,
            webhook_timeout_seconds=_number(env, "WEBHOOK_TIMEOUT_SECONDS", 10, 1, 120, "seconds"),
            webhook_max_wait_seconds=_number(env, "WEBHOOK_MAX_WAIT_SECONDS", 15, 0, 600, "seconds"),
            health_alert_after_minutes=_number(env, "HEALTH_ALERT_AFTER_MINUTES", 60, 5, 7 * 24 * 60, "minutes"),
            raw=dict(env),
        )
        if not settings.subscriptions and not settings.topology_snapshot and not settings.management_group:
            raise ConfigurationError("set WATCHED_SUBSCRIPTIONS (comma-separated subscription ids) or, offline, "
                                     "TOPOLOGY_SNAPSHOT (a snapshot file)")
        return settings
