"""One small exception hierarchy; AWS errors are translated once, where they arise."""

from __future__ import annotations


class SentinelError(Exception):
    """Base of every error sentinel raises on purpose."""


class ConfigError(SentinelError):
    """The config file is invalid. ``errors`` holds one line per problem, each naming its path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


class UsageError(SentinelError):
    """A CLI call or Lambda event that cannot be understood (exit code 2)."""


class SecretError(SentinelError):
    """A secret could not be fetched. The message never contains the secret."""


class StateError(SentinelError):
    """The state store could not be read or written: callers fail closed."""


class ConflictError(StateError):
    """A conditional write lost a race (version or fencing token moved on)."""


class LeaseHeld(SentinelError):
    """Another invocation holds this target's lease."""


class ConnectionPolicyError(SentinelError):
    """A connection was about to leave the allowed networks (tests: loopback only)."""
