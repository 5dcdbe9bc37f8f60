"""The Redis store (`VIDEOBRIDGE_STORE=redis://...`): calls and the outbox in two Redis hashes.

One bridge process at a time holds the store, as one holds a state file's lock: a holder key
with a TTL, renewed well inside it, is the lease. Every commit is one Lua script that first
checks the lease is still ours (the fencing check: a process that was paused past its TTL and
lost the lease cannot write), then applies the whole change; Redis runs a script atomically,
and with `appendonly yes` + `appendfsync always` its answer comes after the fsync, so a commit
that returned is on disk. Connection errors become `StateError` (the HTTP edge answers 503) and
the next command reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
from typing import Any

import structlog
from redis import asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from videobridge.errors import StateError, StateLocked
from videobridge.models import Call, Notification
from videobridge.state.base import Change, HeldView

log = structlog.get_logger("videobridge.state")

PREFIX = "videobridge:"
LEASE_TTL = 10.0  # seconds; renewed every third of it

# KEYS: holder, calls, outbox. ARGV: token, then counted groups: puts (room, json)*, drops
# (room)*, adds (seq, json)*, settles (seq)*.
COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local i = 2
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HDEL', KEYS[2], ARGV[i]); i = i + 1 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HDEL', KEYS[3], ARGV[i]); i = i + 1 end
return 1
"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def redacted(url: str) -> str:
    """The URL without its password (for logs and errors)."""
    _, sep, tail = url.partition("@")
    return url.split("://")[0] + "://***@" + tail if sep else url


def encode(change: Change) -> list[str]:
    args: list[str] = [str(len(change.put_calls))]
    for call in change.put_calls:
        args += [call.room_name, _json(call.to_json())]
    args += [str(len(change.drop_calls)), *change.drop_calls]
    args.append(str(len(change.add_notifications)))
    for note in change.add_notifications:
        args += [str(note.seq), _json(note.to_json())]
    args += [str(len(change.settle_notifications)), *(str(s) for s in change.settle_notifications)]
    return args


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


class RedisStore(HeldView):
    """The `Store` on Redis. Like the file store, the in-memory view is the truth while we hold
    the lease (nobody else may write), so reads cost no round trip."""

    def __init__(self, url: str, *, lease_ttl: float = LEASE_TTL, prefix: str = PREFIX) -> None:
        self.url = url
        self._ttl_ms = int(lease_ttl * 1000)
        self._keys = [prefix + "holder", prefix + "calls", prefix + "outbox"]
        self._token = f"{socket.gethostname()}:{secrets.token_hex(8)}"
        self._redis: aioredis.Redis | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._lost = False
        self.calls: dict[str, Call] = {}
        self.outbox: dict[int, Notification] = {}
        self._next_seq = 1
        self.writes = 0

    @property
    def is_open(self) -> bool:
        return self._redis is not None and not self._lost

    async def aopen(self, *, wait: bool = False) -> None:
        """Take the lease and load the state. `wait`: a standby `serve` waits for the holder's
        lease to end (it stops renewing when it dies: within the TTL) instead of refusing."""
        client = aioredis.from_url(self.url, decode_responses=True, socket_timeout=5.0,
                                   socket_connect_timeout=5.0, health_check_interval=30)
        try:
            told = False
            while not await client.set(self._keys[0], self._token, nx=True, px=self._ttl_ms):
                holder = await client.get(self._keys[0])
                if not wait:
                    raise StateLocked(f"state store {redacted(self.url)} is in use by another videobridge "
                                      f"process {holder!r}")
                if not told:
                    log.info("state_standby", store=redacted(self.url), holder=holder,
                             reason="another instance holds the store; taking over when its lease ends")
                    told = True
                await asyncio.sleep(min(0.5, self._ttl_ms / 4000))  # one SET NX: cheap to ask often
            if told:
                log.info("state_takeover", store=redacted(self.url))
            calls = await client.hgetall(self._keys[1])
            outbox = await client.hgetall(self._keys[2])
        except RedisError as exc:
            await client.aclose()
            raise StateError(f"state store {redacted(self.url)}: {exc}") from None
        except BaseException:
            await client.aclose()
            raise
        try:
            loaded = (Call.from_json(json.loads(doc)) for doc in calls.values())
            self.calls = {c.room_name: c for c in loaded}
            notes = (Notification.from_json(json.loads(doc)) for doc in outbox.values())
            self.outbox = dict(sorted((n.seq, n) for n in notes))
        except (KeyError, TypeError, ValueError) as exc:
            await client.delete(self._keys[0])
            await client.aclose()
            raise StateError(f"state store {redacted(self.url)}: unexpected content "
                             f"({exc.__class__.__name__})") from exc
        self._next_seq = max(self.outbox, default=0) + 1
        self._redis = client
        self._renewer = asyncio.create_task(self._renew(), name="state-lease")

    async def _renew(self) -> None:
        assert self._redis is not None
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                held = await self._redis.eval(RENEW, 1, self._keys[0], self._token, str(self._ttl_ms))
            except RedisError as exc:
                log.warning("state_lease_renew_failed", error=str(exc)[:200])
                continue  # the next renewal may get through within the TTL
            if not held:
                self._lost = True
                log.error("state_lease_lost", store=redacted(self.url),
                          reason="another process holds the store now; this one no longer writes")
                return

    async def commit(self, change: Change) -> None:
        if not change:
            return
        if self._redis is None or self._lost:
            raise StateError("state store is not open (or its lease was lost)")
        try:
            await self._redis.eval(COMMIT, 3, *self._keys, self._token, *encode(change))
        except ResponseError as exc:
            if "LEASE" in str(exc):
                self._lost = True
                raise StateError("state store lease lost: another process holds it") from None
            raise StateError(f"state write failed: {exc}") from None
        except RedisError as exc:
            raise StateError(f"state store unavailable: {exc}") from None
        self.writes += 1
        self._apply_view(change)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._redis is not None:
            with contextlib.suppress(RedisError):
                await self._redis.eval(RELEASE, 1, self._keys[0], self._token)
            await self._redis.aclose()
            self._redis = None


def read_redis(url: str, *, prefix: str = PREFIX) -> tuple[dict[str, Call], dict[int, Notification]]:
    """Calls and outbox as committed, without the lease (for the CLI's listings, as `read_state`
    reads the file without its lock)."""
    import redis

    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.hgetall(prefix + "calls")
            pipe.hgetall(prefix + "outbox")
            calls_raw, outbox_raw = pipe.execute()
    except RedisError as exc:
        raise StateError(f"state store {redacted(url)}: {exc}") from None
    finally:
        client.close()
    try:
        calls = (Call.from_json(json.loads(doc)) for doc in calls_raw.values())
        notes = (Notification.from_json(json.loads(doc)) for doc in outbox_raw.values())
        return {c.room_name: c for c in calls}, dict(sorted((n.seq, n) for n in notes))
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"state store {redacted(url)}: unexpected content ({exc.__class__.__name__})") from exc
