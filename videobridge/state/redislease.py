"""Leases in Redis for bridge instances sharing one store: a lock per room, and the leader lease.

Both are a key holding a random token, set with NX and a TTL, extended or deleted only by a
script that first checks the token is still ours. What a holder writes is fenced: the commit
script checks the same tokens (`Fences`), so an instance paused past a TTL cannot write after
someone else took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import structlog
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from videobridge.errors import StateError

log = structlog.get_logger("videobridge.state")

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
ROOM_LOCK_TTL = 15.0  # longer than a start's Daily deadline (10 s); a crashed holder blocks its room this long
ROOM_LOCK_WAIT = 40.0  # a waiter gives up (503) after this

# The leader token of the task that is running leader work (the poller, the outbox worker and
# what they spawn: asyncio copies the context into new tasks), for the commit's fence.
leading: contextvars.ContextVar[str | None] = contextvars.ContextVar("videobridge_leading", default=None)


T = TypeVar("T")


async def shielded(command: Awaitable[T], *, on_cancel: Callable[[asyncio.Future[Any]], None] | None = None) -> T:
    """A Redis command our cancellation cannot interrupt: redis-py (8.1) may swallow a cancel that
    lands inside a command, or leave its connection unusable. A cancelled caller leaves at once;
    the command finishes by itself (`on_cancel` sees its outcome)."""
    task = asyncio.ensure_future(command)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(on_cancel or _retrieve)
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


_cleanups: set[asyncio.Future[None]] = set()  # releases started from a callback, kept till done


def _later(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)


async def take(redis: aioredis.Redis, key: str, token: str, ttl_ms: int) -> bool:
    """SET NX PX `key` to our `token`; a caller cancelled meanwhile gives back what it took."""
    def give_back(task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is None and task.result():
            _later(release(redis, key, token))

    return bool(await shielded(redis.set(key, token, nx=True, px=ttl_ms), on_cancel=give_back))


async def release(redis: aioredis.Redis, key: str, token: str) -> None:
    """Delete `key` if it still holds our `token` (unreleased, it expires by itself)."""
    with contextlib.suppress(RedisError):
        await redis.eval(RELEASE, 1, key, token)


def new_token(instance: str) -> str:
    return f"{instance}:{secrets.token_hex(8)}"


class RoomLocks:
    """`exclusive(room)` across instances. The call service's in-process lock comes first, so at
    most one task per instance waits here for a room."""

    def __init__(self, redis: Callable[[], aioredis.Redis], *, prefix: str, instance: str,
                 ttl: float = ROOM_LOCK_TTL, wait: float = ROOM_LOCK_WAIT) -> None:
        self._redis = redis
        self._prefix = prefix + "lock:"
        self._instance = instance
        self._ttl_ms = int(ttl * 1000)
        self._wait = wait
        self.held: dict[str, str] = {}  # room -> our token, while held (the commit fences on it)

    def key(self, room: str) -> str:
        return self._prefix + room

    @contextlib.asynccontextmanager
    async def exclusive(self, room: str) -> AsyncIterator[None]:
        token = new_token(self._instance)
        key = self.key(room)
        give_up = time.monotonic() + self._wait
        pause = 0.002
        try:
            while not await take(self._redis(), key, token, self._ttl_ms):
                if time.monotonic() > give_up:
                    raise StateError(f"room {room} stayed locked by another instance for {self._wait:.0f} s")
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
        except RedisError as exc:
            raise StateError(f"state store unavailable: {exc}") from None
        self.held[room] = token
        try:
            yield
        finally:
            del self.held[room]
            await shielded(release(self._redis(), key, token))



class LeaderLease:
    """Runs the leader's work on whichever instance holds `prefix + "leader"`: a standby asks for
    the lease every quarter TTL, the leader renews it every third and stops its work as soon as
    it cannot show it still holds it (lost to another, or Redis silent for a whole TTL)."""

    def __init__(self, redis: Callable[[], aioredis.Redis], *, prefix: str, instance: str, ttl: float) -> None:
        self._redis = redis
        self.key = prefix + "leader"
        self._instance = instance
        self._ttl = ttl
        self.token: str | None = None  # ours while we lead

    async def _acquire(self) -> str:
        told = False
        while True:
            token = new_token(self._instance)
            try:
                if await take(self._redis(), self.key, token, int(self._ttl * 1000)):
                    return token
                if not told:
                    holder = await shielded(self._redis().get(self.key))
                    log.info("leader_standby", leader=holder,
                             reason="another instance runs the poller and the outbox; serving requests meanwhile")
                    told = True
                # wake as the holder's lease runs out (a dead holder stops renewing it)
                left = await shielded(self._redis().pttl(self.key))
                pause = min(self._ttl / 4, max(0.005, left / 1000 + 0.005)) if left > 0 else 0.005
            except RedisError as exc:
                log.warning("leader_lease_unavailable", error=str(exc)[:200])
                pause = self._ttl / 4
            await asyncio.sleep(pause)

    async def _hold(self, token: str) -> None:
        """Returns when the lease is no longer surely ours."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                held = await shielded(self._redis().eval(RENEW, 1, self.key, token, str(int(self._ttl * 1000))))
            except RedisError as exc:
                log.warning("leader_lease_renew_failed", error=str(exc)[:200])
                if time.monotonic() - renewed >= self._ttl * 0.9:
                    return  # it may have expired: someone else may lead now
                continue
            if not held:
                return
            renewed = time.monotonic()

    async def run(self, work: Callable[[], Awaitable[None]], *, on_change: Callable[[bool], None]) -> None:
        while True:
            token = await self._acquire()
            self.token = token
            log.info("leader_elected", leader=token)
            on_change(True)

            async def lead(token: str = token) -> None:
                leading.set(token)
                await work()

            task = asyncio.create_task(lead(), name="leader-work")
            holder = asyncio.create_task(self._hold(token), name="leader-lease")
            try:
                await asyncio.wait({task, holder}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (task, holder):
                    t.cancel()
                await asyncio.wait({task, holder})  # never raises theirs; a cancel of ours still stops us
                self.token = None
                await shielded(release(self._redis(), self.key, token))  # a clean stop hands over at once
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("leader_work_crashed", error=str(task.exception())[:200])
                await asyncio.sleep(1.0)  # let another instance have a go
            log.warning("leader_lost", reason="the lease is no longer ours; back to standby")
            on_change(False)
