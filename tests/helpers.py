"""Constants and helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient

from videobridge.devjwt import DevSigner
from videobridge.models import Notification
from videobridge.web import BRIDGE

T = TypeVar("T")
ALICE = "724ke-xyaaa-aaaan-ayptq-cai"
BOB = "hut2x-yaaaa-aaaaq-bi6za-cai"
CAROL = "rdmx6-jaaaa-aaaaa-aaadq-cai"
GROUP = "ll4qc-niaaa-aaaap-qvfoq-cai"
COMMUNITY = "3v2qj-5qaaa-aaaar-q2qoa-cai"
LOCAL_USER_INDEX = "nq4qv-wqaaa-aaaaf-bhdgq-cai"  # a local user index canister
HOOK_SECRET = b"videobridge-test-webhook-secret!"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"


class RecordingNotifier:
    """Stands in for the IC where a test is not about the IC: records every send."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, note: Notification) -> Any:
        from videobridge.notifier import Skipped

        self.sent.append(note)
        return Skipped()

    async def close(self) -> None:
        pass


def bridge_of(client: TestClient) -> Any:
    return client.server.app[BRIDGE]


def start_token(signer: DevSigner, user: str = ALICE, chat: dict[str, Any] | None = None, *,
                call_type: str = "Default", diamond: bool = False, audio_only: bool | None = None) -> str:
    extra = {} if audio_only is None else {"audio_only": audio_only}  # None: an older client's token
    return signer.video_call_token("StartVideoCall", user_id=user, chat_id=chat or {"Group": GROUP},
                                   call_type=call_type, is_diamond=diamond, **extra)


def join_token(signer: DevSigner, user: str = BOB, chat: dict[str, Any] | None = None) -> str:
    return signer.video_call_token("JoinVideoCall", user_id=user, chat_id=chat or {"Group": GROUP})


def participant_token(signer: DevSigner, user: str = BOB, chat: dict[str, Any] | None = None, *,
                      local_user_index: str | None = LOCAL_USER_INDEX) -> str:
    return signer.video_call_token("VideoCallParticipant", user_id=user, chat_id=chat or {"Group": GROUP},
                                   local_user_index=local_user_index)


def decline_token(signer: DevSigner, message_id: int | str, user: str = BOB,
                  chat: dict[str, Any] | None = None, *, local_user_index: str | None = LOCAL_USER_INDEX) -> str:
    return signer.video_call_token("DeclineVideoCall", user_id=user, chat_id=chat or {"Group": GROUP},
                                   message_id=str(message_id), local_user_index=local_user_index)


def end_token(signer: DevSigner, user: str = ALICE, chat: dict[str, Any] | None = None) -> str:
    return signer.video_call_token("MarkVideoCallAsEnded", user_id=user, chat_id=chat or {"Group": GROUP})


async def get_token(client: TestClient, jwt: str, **query: str) -> tuple[int, dict[str, Any]]:
    params = {"initiator-username": "alice", **query}
    async with client.get("/room/meeting_access_token", params=params, headers={"x-auth-jwt": jwt}) as resp:
        return resp.status, await resp.json()


def signed_hook(body: bytes, *, secret: bytes = HOOK_SECRET, timestamp: float | None = None) -> dict[str, str]:
    import hashlib
    import hmac

    ts = str(int(time.time() if timestamp is None else timestamp))
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": base64.b64encode(mac).decode(),
            "Content-Type": "application/json"}


async def eventually(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
    """Await until `check()` holds (polled every 10 ms on the test's loop); the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def wait_until(check: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    """Block until `check()` returns something truthy (polled every 0.1 s), and return it: for
    tests that watch a `serve` subprocess from outside any event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")
