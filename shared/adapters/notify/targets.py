"""Which webhook URLs the app may post to: each channel's own service hosts, plus what WEBHOOK_ALLOWED_HOSTS lists.

A webhook URL is a setting anyone with write access to the app's configuration (or its Key Vault secret) can
change; without a check it turns the function into a request forwarder into the app's network (the instance
metadata endpoint 169.254.169.254, loopback services, private addresses). Messages here name the setting and the
host, never the URL (its path and query are the secret).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

ALLOWED_HOSTS_SETTING = "WEBHOOK_ALLOWED_HOSTS"

# The hosts each service issues webhook URLs on ("*." = any sub-domain of it).
# - Slack incoming webhooks: https://hooks.slack.com/services/T…/B…/… (api.slack.com/messaging/webhooks).
# - Teams Workflows ("When a Teams webhook request is received") are Power Automate flows: older flows get a
#   Logic Apps URL, https://prod-NN.<region>.logic.azure.com:443/workflows/…/invoke?…&sig=…; newer ones a Power
#   Platform URL, https://<environment>.NN.environment.api.powerplatform.com:443/powerautomate/automations/direct/….
# - The generic JSON webhook has no service of its own: its host must be listed.
KNOWN_HOSTS: Mapping[str, tuple[str, ...]] = {
    "slack": ("hooks.slack.com",),
    "teams": ("*.logic.azure.com", "*.environment.api.powerplatform.com"),
    "json": (),
}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Iterable[str]]


class TargetRefused(ValueError):
    """The webhook URL may not be posted to; the message names the setting and why (never the URL)."""


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """WEBHOOK_ALLOWED_HOSTS: exact host names (case-insensitive) and addresses an operator trusts."""

    names: frozenset[str] = frozenset()
    addresses: frozenset[Address] = frozenset()

    @classmethod
    def parse(cls, text: str | None) -> AllowedHosts:
        names: set[str] = set()
        addresses: set[Address] = set()
        for item in (text or "").split(","):
            entry = item.strip().strip("[]").lower()
            if not entry:
                continue
            address = _address(entry)
            if address is not None:
                addresses.add(address)
            else:
                names.add(entry.rstrip("."))
        return cls(frozenset(names), frozenset(addresses))

    def lists(self, host: str) -> bool:
        address = _address(host)
        return address in self.addresses if address is not None else host.rstrip(".") in self.names


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # a zone index (fe80::1%eth0) is not part of it
    except ValueError:
        return None


def _internal(address: Address) -> bool:
    """Loopback, private, link-local (cloud metadata), shared, reserved or unspecified: not a chat service."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return not address.is_global or address.is_multicast


def _known(channel: str, host: str) -> bool:
    for pattern in KNOWN_HOSTS.get(channel, ()):
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def check_target(setting: str, channel: str, url: str, allowed: AllowedHosts) -> str:
    """The URL's host when the app may post there, else TargetRefused naming the setting and the reason."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        raise TargetRefused(f"setting {setting} does not hold a valid URL") from None
    if not host:
        raise TargetRefused(f"setting {setting} does not hold a URL with a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(f"setting {setting}: a webhook URL with user information is refused")
    listed = allowed.lists(host)
    address = _address(host)
    if parts.scheme == "http":
        loopback = host == "localhost" or (address is not None and address.is_loopback)
        if not (listed and loopback):
            raise TargetRefused(f"setting {setting}: plain http is refused (it would send the secret URL in "
                                f"clear); only a loopback host listed in {ALLOWED_HOSTS_SETTING} may use it")
        return host
    if parts.scheme != "https":
        raise TargetRefused(f"setting {setting} does not hold an https URL")
    if listed:
        return host
    if address is not None:
        kind = "an internal (private, loopback or link-local) address" if _internal(address) else "an address"
        raise TargetRefused(f"setting {setting}: host {host} is {kind}; list it in {ALLOWED_HOSTS_SETTING} to "
                            "allow it")
    if not _known(channel, host):
        raise TargetRefused(f"setting {setting}: host {host} is not a {channel} webhook host "
                            f"({', '.join(KNOWN_HOSTS.get(channel, ())) or 'it has none'}); list it in "
                            f"{ALLOWED_HOSTS_SETTING} to allow it")
    return host


def _resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)]


def check_resolved(host: str, allowed: AllowedHosts, *, resolve: Resolver = _resolve) -> None:
    """Before a post: a service host that resolves to an internal address is refused unless that address (or the
    host itself) is listed. DNS failures are left to the post, which reports them as a retryable failure."""
    if allowed.lists(host) or _address(host) is not None:
        return
    try:
        found = list(resolve(host))
    except OSError:
        return
    for text in found:
        address = _address(text)
        if address is not None and _internal(address) and address not in allowed.addresses:
            raise TargetRefused(f"host {host} resolves to the internal address {address}; list it in "
                                f"{ALLOWED_HOSTS_SETTING} to allow it")
