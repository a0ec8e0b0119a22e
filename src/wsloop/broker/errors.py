"""What the brokers raise."""

from __future__ import annotations

__all__ = ["BrokerError", "BrokerUnavailable", "RedisReplyError"]


class BrokerError(Exception):
    """Something a broker could not do."""


class BrokerUnavailable(BrokerError, ConnectionError):
    """Redis cannot be reached now (down, restarting, or the connection was
    lost with the command in flight: then it may or may not have run)."""


class RedisReplyError(BrokerError):
    """Redis answered a command with an error."""
