"""Webhook delivery like Daily: signed POSTs, failure counting, circuit breaker or retries.

Each webhook has one worker task draining its queue in order, so tests see events in the order
they happened. Delivery never blocks the API handler that caused the event.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac as hmac_lib
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from videobridge.emulator.state import WebhookRecord

PROBE_BODY = b'{"test":"test"}'


def sign(secret_b64: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(base64decode(secret), timestamp + "." + body)) — daily-api.md §6.4."""
    key = base64.b64decode(secret_b64)
    mac = hmac_lib.new(key, timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def compact(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


class WebhookDispatcher:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        attempts: int = 5,  # per message, for retryType "exponential"
        backoff: float = 0.05,  # first retry delay; doubles (Daily: up to 15 min, too slow for tests)
        timeout: float = 5.0,  # per delivery
        probe_timeout: float = 3.0,  # Daily wants the verification 200 "within a few seconds"
        failure_threshold: int = 3,  # circuit breaker
        retry_timestamp: str = "fresh",  # "original": a retry is signed with the first attempt's time
    ) -> None:
        if retry_timestamp not in ("fresh", "original"):
            raise ValueError("retry_timestamp must be 'fresh' or 'original'")
        self._retry_timestamp = retry_timestamp
        self._clock = clock
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = timeout
        self._probe_timeout = probe_timeout
        self._threshold = failure_threshold
        self.hooks: dict[str, WebhookRecord] = {}
        self._queues: dict[str, asyncio.Queue[bytes]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0  # successful deliveries, for stats

    def publish(self, event: dict[str, Any]) -> None:
        body: bytes | None = None
        for hook in self.hooks.values():
            if hook.state != "ACTIVE" or event["type"] not in hook.event_types:
                continue
            body = body or compact(event)
            self._queue_for(hook).put_nowait(body)

    async def probe(self, url: str, secret_b64: str, basic_auth: str | None) -> bool:
        return await self._post(url, secret_b64, basic_auth, PROBE_BODY, self._probe_timeout)

    def forget(self, uuid: str) -> None:
        self.hooks.pop(uuid, None)
        queue = self._queues.pop(uuid, None)
        worker = self._workers.pop(uuid, None)
        if worker is not None:
            worker.cancel()  # its in-flight message is marked done by the worker's `finally`
        while queue is not None and not queue.empty():  # so nobody waits on drain() forever
            queue.get_nowait()
            queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued message was delivered or given up."""
        await asyncio.gather(*(q.join() for q in list(self._queues.values())))

    async def close(self) -> None:
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- internals -------------------------------------------------------------------------------

    def _queue_for(self, hook: WebhookRecord) -> asyncio.Queue[bytes]:
        queue = self._queues.get(hook.uuid)
        if queue is None:
            queue = self._queues[hook.uuid] = asyncio.Queue()
            self._workers[hook.uuid] = asyncio.get_running_loop().create_task(self._work(hook, queue))
        return queue

    async def _work(self, hook: WebhookRecord, queue: asyncio.Queue[bytes]) -> None:
        while True:
            body = await queue.get()
            try:
                await self._deliver(hook, body)
                if hook.state != "ACTIVE":  # tripped: Daily stops sending anything
                    while not queue.empty():
                        queue.get_nowait()
                        queue.task_done()
            finally:
                queue.task_done()

    async def _deliver(self, hook: WebhookRecord, body: bytes) -> None:
        attempts = self._attempts if hook.retry_type == "exponential" else 1
        first = str(int(self._clock()))
        for attempt in range(attempts):
            if hook.state != "ACTIVE":
                return
            stamp = first if self._retry_timestamp == "original" else None
            if await self._post(hook.url, hook.hmac, hook.basic_auth, body, self._timeout, stamp):
                hook.failed_count = 0
                hook.last_moment_pushed = self._clock()
                self.delivered += 1
                return
            hook.failed_count += 1
            if hook.retry_type != "exponential" and hook.failed_count >= self._threshold:
                hook.state = "FAILED"
                return
            if attempt + 1 < attempts:
                await asyncio.sleep(self._backoff * (2**attempt))

    async def _post(self, url: str, secret_b64: str, basic_auth: str | None, body: bytes, timeout: float,  # noqa: ASYNC109
                    timestamp: str | None = None) -> bool:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        timestamp = timestamp or str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Timestamp": timestamp,
            "X-Webhook-Signature": sign(secret_b64, timestamp, body),
        }
        if basic_auth:
            headers["Authorization"] = f"Basic {basic_auth}"
        try:
            async with asyncio.timeout(timeout):
                async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                    await resp.read()
                    return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return False
