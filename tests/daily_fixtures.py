"""Fixtures shared by the Daily client, token and emulator tests: a live emulator, a client
pointed at it, and a webhook receiver that records what it is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aioresponses import aioresponses
from yarl import URL

from videobridge.daily import DailyClient, RetryPolicy
from videobridge.emulator import DailyEmulator

# PyJWT warns (an error under our filterwarnings) about HMAC keys shorter than 32 bytes.
API_KEY = "test-api-key-0123456789abcdef0123456789abcdef"
WRONG_KEY = "wrong-api-key-0123456789abcdef0123456789abcde"
FAST_RETRIES = RetryPolicy(initial=0.01, cap=0.05)


def hour_from_now() -> int:
    return int(time.time()) + 3600


@pytest.fixture
async def emulator() -> AsyncIterator[DailyEmulator]:
    # The client below runs without Daily's limits (speed), so this emulator does not enforce them;
    # the bridge's emulator (conftest.py) and test_daily_limits.py do.
    emu = DailyEmulator(api_key=API_KEY, domain_name="openchat", webhook_backoff=0.01, probe_timeout=1.0,
                        rate_limits=False)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def client(emulator: DailyEmulator) -> AsyncIterator[DailyClient]:
    assert emulator.base_url is not None
    async with DailyClient(
        api_key=API_KEY,
        base_url=emulator.base_url,
        request_timeout=2.0,
        deadline=3.0,
        rate_per_second=1000.0,
        delete_rate_per_second=1000.0,
        retry_policy=FAST_RETRIES,
    ) as c:
        yield c


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A stand-in for the bridge's /room/hook endpoint."""

    url: str = ""
    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    @property
    def events(self) -> list[Received]:
        return [r for r in self.received if r.body != b'{"test":"test"}']

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/hook"
    yield rec
    await runner.cleanup()


class _NoUpload:
    output_size = 0


class _CompatResponse(ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required `stream_writer` (aioresponses#289)."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NoUpload())
        super().__init__(method, url, **kwargs)


class compat_aioresponses(aioresponses):
    def add(self, url: Any, method: str = "GET", **kwargs: Any) -> None:  # type: ignore[override]
        if kwargs.get("response_class") is None:
            kwargs["response_class"] = _CompatResponse
        super().add(url, method, **kwargs)
