"""The load generator: aiohttp client, one session per concurrency level, pre-built requests."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass
class Result:
    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)  # exceptions
    bodies: list[bytes] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def errors(self, ok: Sequence[int] = (200,)) -> int:
        return sum(n for status, n in self.statuses.items() if status not in ok) + sum(self.failures.values())


def session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120),
                                 auto_decompress=False)


async def run(http: aiohttp.ClientSession, base: str, reqs: Sequence[Req], concurrency: int, *,
              keep_bodies: bool = False) -> Result:
    """Send `reqs` with `concurrency` workers, each request once, and time them."""
    result = Result()
    index = 0
    perf = time.perf_counter

    async def worker() -> None:
        nonlocal index
        while index < len(reqs):
            req = reqs[index]
            index += 1
            started = perf()
            try:
                async with http.request(req.method, base + req.path, headers=req.headers, data=req.body) as resp:
                    body = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                result.failures[type(exc).__name__] += 1
                continue
            result.latencies.append(perf() - started)
            result.statuses[status] += 1
            if keep_bodies:
                result.bodies.append(body)

    started = perf()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = perf() - started
    result.count = len(reqs)
    return result
