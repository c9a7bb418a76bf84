"""sentinel's monitor: the tick, config, state, policy, notifications, CLI and handler."""

__version__ = "0.1.0"
