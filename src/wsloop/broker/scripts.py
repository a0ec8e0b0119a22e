"""The Lua scripts that make a channel's history in Redis.

Keys of channel ``C`` (``prefix`` is the broker's, ``wsloop`` by default;
the braces are a Redis Cluster hash tag, so a channel's keys live together):

* ``{prefix}:{C}:meta``: a hash with ``epoch`` and ``offset``;
* ``{prefix}:{C}:stream``: a stream whose entry ``N-0`` is the message at
  offset ``N`` (fields ``k``: ``t`` for text, ``b`` for binary; ``d``: data);
* ``{prefix}:{C}``: the pub/sub channel, whose messages are
  ``KIND EPOCH ":" OFFSET ":" DATA``.

:data:`PUBLISH` is atomic: no reader ever sees an offset without its stream
entry or a pub/sub message without its offset. A missing meta hash (first
publish, Redis restarted without persistence, keys expired) starts a new
epoch and drops any stream left over, so stream IDs always increase.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["PUBLISH", "READ", "channel_keys", "sha1"]

#: KEYS: meta, stream. ARGV: pub/sub channel, kind, data, history (0: keep
#: none), ttl seconds (0: never expire, even if an earlier ttl was set),
#: epoch to start if there is none.
#: Returns {epoch, offset}.
PUBLISH: Final = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local history = tonumber(ARGV[4])
if history > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', history, offset .. '-0', 'k', ARGV[2], 'd', ARGV[3])
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  if history > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
redis.call('PUBLISH', ARGV[1], ARGV[2] .. epoch .. ':' .. offset .. ':' .. ARGV[3])
return {epoch, offset}
"""

#: KEYS: meta, stream. ARGV: replay what follows this offset (-1: none),
#: at most this many entries. Returns {epoch or nil, offset, entries}.
READ: Final = """
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
if not meta[1] then return {false, 0, {}} end
local entries = {}
local since = tonumber(ARGV[1])
if since >= 0 then
  entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', ARGV[2])
end
return {meta[1], tonumber(meta[2] or '0'), entries}
"""


def sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


def channel_keys(prefix: str, channel: str) -> tuple[str, str, str]:
    """(meta key, stream key, pub/sub channel) of ``channel``."""
    base = f"{prefix}:{{{channel}}}"
    return f"{base}:meta", f"{base}:stream", base
