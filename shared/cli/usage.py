"""What the command modules share: the usage error (one line, exit status 2) and the exit statuses."""

from __future__ import annotations

from shared.core.policy import Policy, PolicyError, load_policy

EXIT_OK, EXIT_FINDING, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad input given on the command line; printed as one line, exit status 2."""


def _policy(path: str) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
