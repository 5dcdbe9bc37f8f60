"""The Redis store (`VIDEOBRIDGE_STORE=redis://...`): calls and the outbox in two Redis hashes,
shared by every bridge instance pointed at it.

Any instance answers any request: a join reads its room's call with one HGET; a start or an end
takes the room's lock in Redis (`redislease.RoomLocks`), reads, decides and commits. Every
commit is one Lua script that first checks the fences (the room locks and, for the leader's
work, the leader lease are still ours), then applies the whole change; Redis runs a script
atomically, and with `appendonly yes` + `appendfsync always` its answer comes after the fsync,
so a commit that returned is on disk. `calls` and `outbox` are caches of the hashes, reloaded
every few seconds and by the leader before each poll. Connection errors become `StateError`
(the HTTP edge answers 503) and the next command reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis import asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from videobridge.background import BackgroundTasks
from videobridge.errors import StateError, StateLocked
from videobridge.models import Call, Notification
from videobridge.state.base import Change, apply_change
from videobridge.state.redislease import LeaderLease, RoomLocks, leading, shielded
from videobridge.state.redispool import FairPool

log = structlog.get_logger("videobridge.state")

PREFIX = "videobridge:"
LEASE_TTL = 10.0  # the leader lease, seconds; renewed every third of it
VIEW_INTERVAL = 5.0  # the caches' reload; the leader reloads before each poll, its outbox twice a second
SCAN_CHUNK = 500  # calls per HSCAN round trip while reloading the view
MAX_CONNECTIONS = 64  # per instance; more concurrent commands wait for one (never an error)

# KEYS: calls, outbox, seq, fences... ARGV: fence count, fence tokens..., then counted groups:
# puts (room, json)*, drops (room)*, adds (seq, json)*, settles (seq)*.
COMMIT = """
local nf = tonumber(ARGV[1])
for f = 1, nf do
  if redis.call('GET', KEYS[3 + f]) ~= ARGV[1 + f] then return redis.error_reply('FENCE ' .. KEYS[3 + f]) end
end
local i = 2 + nf
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HDEL', KEYS[1], ARGV[i]); i = i + 1 end
n = tonumber(ARGV[i]); i = i + 1
local top = tonumber(redis.call('GET', KEYS[3]) or '0')
for _ = 1, n do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  if tonumber(ARGV[i]) > top then top = tonumber(ARGV[i]); redis.call('SET', KEYS[3], top) end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HDEL', KEYS[2], ARGV[i]); i = i + 1 end
return 1
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


def decode(calls_raw: dict[str, str], outbox_raw: dict[str, str],
           url: str) -> tuple[dict[str, Call], dict[int, Notification]]:
    try:
        calls = (Call.from_json(json.loads(doc)) for doc in calls_raw.values())
        notes = (Notification.from_json(json.loads(doc)) for doc in outbox_raw.values())
        return {c.room_name: c for c in calls}, dict(sorted((n.seq, n) for n in notes))
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"state store {redacted(url)}: unexpected content ({exc.__class__.__name__})") from exc


class RedisStore:
    """The shared `Store` on Redis."""

    kind = "redis"
    shared = True

    def __init__(self, url: str, *, lease_ttl: float = LEASE_TTL, prefix: str = PREFIX,
                 view_interval: float = VIEW_INTERVAL, sole: bool = False) -> None:
        self.url = url
        self._prefix = prefix
        self._keys = [prefix + "calls", prefix + "outbox", prefix + "seq"]
        self._sole = sole  # `state migrate`: refuse while an instance leads, and lead meanwhile
        self.instance = socket.gethostname()
        self._redis: aioredis.Redis | None = None
        self.rooms = RoomLocks(self._client, prefix=prefix, instance=self.instance)
        self.leader = LeaderLease(self._client, prefix=prefix, instance=self.instance, ttl=lease_ttl)
        self._view_interval = view_interval
        self._background = BackgroundTasks("redis-store")
        self._healthy = False
        self._replay: list[Change] | None = None  # own commits made while a reload is in flight
        self._decoded: dict[str, tuple[str, Call]] = {}  # room -> (raw, parsed): joins skip json
        self.calls: dict[str, Call] = {}
        self.outbox: dict[int, Notification] = {}

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise StateError("state store is not open")
        return self._redis

    @property
    def is_open(self) -> bool:
        """Open and Redis answered the last command."""
        return self._redis is not None and self._healthy

    def _unavailable(self, exc: RedisError) -> StateError:
        self._healthy = False
        return StateError(f"state store {redacted(self.url)} unavailable: {str(exc)[:200]}")

    async def aopen(self, *, wait: bool = False) -> None:
        """Connect and load the views. Instances share the store: nothing to wait for (`wait` is
        the held stores' standby), except in `sole` use, which refuses while an instance leads."""
        # blocking: beyond MAX_CONNECTIONS concurrent commands wait for a connection, in order
        # (redis-py's default pool refuses with "Too many connections": 503s at a few hundred clients)
        pool = FairPool.from_url(
            self.url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0,
            health_check_interval=30, max_connections=MAX_CONNECTIONS, timeout=5.0)
        self._redis = aioredis.Redis.from_pool(pool)
        try:
            if self._sole and not await self._redis.set(self.leader.key, "state-migrate", nx=True,
                                                         px=int(LEASE_TTL * 6000)):
                holder = await self._redis.get(self.leader.key)
                raise StateLocked(f"state store {redacted(self.url)} is in use by videobridge instance {holder!r}")
            await self.refresh()
        except BaseException as exc:
            await self._redis.aclose()
            self._redis = None
            if isinstance(exc, RedisError):
                raise StateError(f"state store {redacted(self.url)}: {exc}") from None
            raise
        if not self._sole:
            self._background.spawn(self._reload_every(), name="redis-views")

    async def _reload_every(self) -> None:
        while True:
            await asyncio.sleep(self._view_interval)
            with contextlib.suppress(StateError):  # readiness shows it; the next round retries
                await self.refresh()

    async def refresh(self, *, calls: bool = True, outbox: bool = True) -> None:
        replay: list[Change] = []
        self._replay = replay
        try:
            loaded_calls = await self._load_calls() if calls else None
            raw_outbox = await shielded(self._client().hgetall(self._keys[1])) if outbox else {}
        except RedisError as exc:
            raise self._unavailable(exc) from None
        finally:
            self._replay = None
        self._healthy = True
        if loaded_calls is not None:
            self.calls = loaded_calls
        if outbox:
            self.outbox = decode({}, raw_outbox, self.url)[1]  # type: ignore[arg-type]
        for change in replay:  # committed after the read may have run: not lost from the view
            self._apply_view(change)

    async def _load_calls(self) -> dict[str, Call]:
        """The calls hash in chunks (HSCAN: the loop runs between them), decoding only the
        documents that changed since the last reload (10,000 calls: one JSON parse each, once)."""
        known = self._decoded
        fresh: dict[str, tuple[str, Call]] = {}
        calls: dict[str, Call] = {}
        cursor = 0
        while True:
            cursor, got = await shielded(self._client().hscan(self._keys[0], cursor, count=SCAN_CHUNK))
            chunk: dict[str, str] = got  # type: ignore[assignment]  # decode_responses: str to str
            for room, raw in chunk.items():
                cached = known.get(room)
                entry = cached if cached is not None and cached[0] == raw else (
                    raw, decode({room: raw}, {}, self.url)[0][room])
                fresh[room] = entry
                calls[room] = entry[1]
            if not cursor:
                break
        self._decoded = fresh
        return calls

    async def get_call(self, room: str) -> Call | None:
        try:
            raw: str | None = await shielded(self._client().hget(self._keys[0], room))  # type: ignore[arg-type]
        except RedisError as exc:
            raise self._unavailable(exc) from None
        self._healthy = True
        if raw is None:
            self.calls.pop(room, None)
            return None
        cached = self._decoded.get(room)
        if cached is not None and cached[0] == raw:
            return cached[1]
        call = decode({room: raw}, {}, self.url)[0][room]
        self._decoded[room] = (raw, call)
        self.calls[room] = call
        return call

    def exclusive(self, room: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self.rooms.exclusive(room)

    async def allocate_seq(self, count: int = 1) -> int:
        try:
            last = int(await shielded(self._client().incrby(self._keys[2], count)))
        except RedisError as exc:
            raise self._unavailable(exc) from None
        return last - count + 1

    def _fences(self, change: Change) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        tokens: list[str] = []
        for room in {c.room_name for c in change.put_calls} | set(change.drop_calls):
            token = self.rooms.held.get(room)
            if token is not None:
                keys.append(self.rooms.key(room))
                tokens.append(token)
        if (token := leading.get()) is not None:
            keys.append(self.leader.key)
            tokens.append(token)
        return keys, tokens

    async def commit(self, change: Change) -> None:
        if not change:
            return
        keys, tokens = self._fences(change)
        try:
            await shielded(self._client().eval(COMMIT, 3 + len(keys), *self._keys, *keys, str(len(keys)), *tokens,
                                               *encode(change)))
        except ResponseError as exc:
            if "FENCE" in str(exc):
                raise StateError("state write refused: this instance no longer holds "
                                 f"{str(exc).split()[-1].removeprefix(self._prefix)}") from None
            raise StateError(f"state write failed: {exc}") from None
        except RedisError as exc:
            raise self._unavailable(exc) from None
        self._healthy = True
        if self._replay is not None:
            self._replay.append(change)
        self._apply_view(change)

    def _apply_view(self, change: Change) -> None:
        apply_change(self.calls, self.outbox, change)

    async def lead(self, work: Callable[[], Awaitable[None]], *, on_change: Callable[[bool], None]) -> None:
        await self.leader.run(work, on_change=on_change)

    async def first_sighting(self, key: str, ttl: float) -> bool:
        try:
            return bool(await shielded(self._client().set(self._prefix + "seen:" + key, "1", nx=True,
                                                          px=int(ttl * 1000))))
        except RedisError as exc:
            raise self._unavailable(exc) from None

    async def aclose(self) -> None:
        await self._background.aclose()
        if self._redis is not None:
            if self._sole:
                with contextlib.suppress(RedisError):
                    await self._redis.delete(self.leader.key)
            await self._redis.aclose()
            self._redis = None


def read_redis(url: str, *, prefix: str = PREFIX) -> tuple[dict[str, Call], dict[int, Notification]]:
    """Calls and outbox as committed (for the CLI's listings, as `read_state` reads the file
    without its lock)."""
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
    return decode(calls_raw, outbox_raw, url)
