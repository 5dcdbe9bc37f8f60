"""`videobridge sandbox`: the bridge, a Daily emulator and a dev OpenChat key on one machine.

No credentials needed: the emulator plays Daily (and validates the meeting tokens the bridge
self-signs), a fresh P-256 key plays OpenChat's JWT key, notifications are logged, not sent.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import shlex
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import structlog
from aiohttp import web

from videobridge.config import Settings
from videobridge.daily.protocol import EVENT_TYPES
from videobridge.devjwt import DevSigner
from videobridge.emulator import DailyEmulator

log = structlog.get_logger("videobridge.sandbox")

ALICE = "724ke-xyaaa-aaaan-ayptq-cai"
BOB = "hut2x-yaaaa-aaaaq-bi6za-cai"
CAROL = "rdmx6-jaaaa-aaaaa-aaadq-cai"
LUI = "nq4qv-wqaaa-aaaaf-bhdgq-cai"  # a local user index canister (notifications are only logged here)
GROUP = "ll4qc-niaaa-aaaap-qvfoq-cai"
EVENTS = list(EVENT_TYPES)


def sandbox_settings(base: Settings, *, emulator_url: str, api_key: str, signer: DevSigner,
                     hook_secret: bytes) -> Settings:
    state = base.state_path
    if "VIDEOBRIDGE_STATE" not in base.sources:
        state = Path(tempfile.mkdtemp(prefix="videobridge-sandbox-")) / "state.json"
    return replace(base, daily_api_key=api_key, daily_api_url=emulator_url, daily_domain_id=None,
                   oc_public=signer.public_pem, oc_identity=None, ic_url=None,
                   daily_hook_hmac=hook_secret, state_path=state,
                   presence_interval=min(base.presence_interval, 5.0))


def instructions(bridge_url: str, emulator_url: str, signer: DevSigner) -> str:
    exp = int(time.time()) + 3600

    def jwt(claim_type: str, user: str, chat: dict[str, Any], **extra: Any) -> str:
        token = signer.video_call_token(claim_type, user_id=user, chat_id=chat, exp=exp, **extra)
        return shlex.quote("x-auth-jwt: " + token)

    group, direct_alice, direct_bob = {"Group": GROUP}, {"Direct": BOB}, {"Direct": ALICE}
    url = f"{bridge_url}/room/meeting_access_token?initiator-username=alice&initiator-displayname=Alice"
    join_url = f"{bridge_url}/room/meeting_access_token?initiator-username=bob"
    return "\n".join([
        "",
        "videobridge sandbox is running: the bridge, a Daily emulator and a dev OpenChat key.",
        f"  bridge         {bridge_url}",
        f"  Daily emulator {emulator_url}   (stats: {emulator_url}/_emulator/stats)",
        "",
        "Start a call in a group (alice; valid for an hour):",
        f"  curl -s -H {jwt('StartVideoCall', ALICE, group)} {shlex.quote(url)}",
        "Join it (bob):",
        f"  curl -s -H {jwt('JoinVideoCall', BOB, group)} {shlex.quote(join_url)}",
        "Put alice in the emulated room with the token her start got back:",
        f"  curl -s -X POST -d '{{\"token\": \"<token>\"}}' {emulator_url}/_emulator/rooms/<roomName>/join",
        "Carol declines the group call (her other devices stop ringing; the call goes on):",
        f"  curl -s -w '%{{http_code}}\\n' -X POST "
        f"-H {jwt('VideoCallParticipant', CAROL, group, local_user_index=LUI)} "
        f"{bridge_url}/room/decline",
        "Take that session out of the call (leave; with several sessions of one user, add",
        "-d '{\"sessionId\": \"<session_id>\"}'); leave never ends a call, but an empty room does:",
        f"  curl -s -w '%{{http_code}}\\n' -X POST "
        f"-H {jwt('VideoCallParticipant', ALICE, group, local_user_index=LUI)} "
        f"{bridge_url}/room/leave",
        "Start an audio call in a direct chat (alice calls bob; every token sends audio only):",
        f"  curl -s -H {jwt('StartVideoCall', ALICE, direct_alice, audio_only=True)} {shlex.quote(url)}",
        "Bob declines it (a direct call ends: both users told, the room deleted):",
        f"  curl -s -w '%{{http_code}}\\n' -X POST "
        f"-H {jwt('VideoCallParticipant', BOB, direct_bob, local_user_index=LUI)} "
        f"{bridge_url}/room/decline",
        "Stop with Ctrl-C.",
        "",
    ])


async def self_check(bridge_url: str, emulator: DailyEmulator, signer: DevSigner) -> str:
    """Start a call, join it, put the starter in the emulated room, end it; an audio call declined;
    a leave: prove the paths work."""
    start = signer.video_call_token("StartVideoCall", user_id=ALICE, chat_id={"Group": GROUP})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{bridge_url}/room/meeting_access_token",
                            params={"initiator-username": "alice"}, headers={"x-auth-jwt": start}) as resp:
            body: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"start answered {resp.status}: {body.get('message')}")
        session = emulator.join(body["roomName"], body["token"])
        emulator.leave(body["roomName"], session)
        end = signer.video_call_token("MarkVideoCallAsEnded", user_id=ALICE, chat_id={"Group": GROUP})
        async with http.post(f"{bridge_url}/room/end_meeting", headers={"x-auth-jwt": end}) as resp:
            ended = await resp.json()
        extra = await _check_new_paths(http, bridge_url, emulator, signer)
    return (f"sandbox self-check ok: room {body['roomName']}, messageId {body['messageId']}, "
            f"token accepted by the emulator, end_meeting -> ended={ended['ended']}; {extra}")


async def _check_new_paths(http: aiohttp.ClientSession, bridge_url: str, emulator: DailyEmulator,
                           signer: DevSigner) -> str:
    """SPEC §9: an audio call in a direct chat, declined; a group call joined and left."""
    async def post(path: str, token: str) -> int:
        async with http.post(f"{bridge_url}{path}", headers={"x-auth-jwt": token}) as resp:
            await resp.read()
            return resp.status

    audio = signer.video_call_token("StartVideoCall", user_id=ALICE, chat_id={"Direct": BOB}, audio_only=True)
    async with http.get(f"{bridge_url}/room/meeting_access_token",
                        params={"initiator-username": "alice"}, headers={"x-auth-jwt": audio}) as resp:
        call: dict[str, Any] = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"audio start answered {resp.status}: {call.get('message')}")
    emulator.join(call["roomName"], call["token"])
    if emulator.participants(call["roomName"])[0].can_send != {"audio"}:
        raise RuntimeError("the audio call's token may send more than audio")
    decline = signer.video_call_token("DeclineVideoCall", user_id=BOB, chat_id={"Direct": ALICE},
                                      message_id=call["messageId"], local_user_index=LUI)
    if (status := await post("/room/decline", decline)) != 204:
        raise RuntimeError(f"decline answered {status}")
    start = signer.video_call_token("StartVideoCall", user_id=ALICE, chat_id={"Group": GROUP})
    async with http.get(f"{bridge_url}/room/meeting_access_token",
                        params={"initiator-username": "alice"}, headers={"x-auth-jwt": start}) as resp:
        group: dict[str, Any] = await resp.json()
    emulator.join(group["roomName"], group["token"])
    leave = signer.video_call_token("VideoCallParticipant", user_id=ALICE, chat_id={"Group": GROUP},
                                    local_user_index=LUI)
    if (status := await post("/room/leave", leave)) != 204 or emulator.participants(group["roomName"]):
        raise RuntimeError(f"leave answered {status}")
    return "audio call audio-only and declined -> 204, leave -> 204"


async def run_sandbox(base: Settings, *, out: TextIO, check: bool = False) -> None:
    from videobridge.daemon import serve
    from videobridge.notifier import LoggingNotifier

    api_key = secrets.token_urlsafe(24)
    hook_secret = secrets.token_bytes(32)
    emulator = DailyEmulator(api_key=api_key)
    emulator_url = await emulator.start(base.host, 0)
    signer = DevSigner()
    settings = sandbox_settings(base, emulator_url=emulator_url, api_key=api_key, signer=signer,
                                hook_secret=hook_secret)
    stop = asyncio.Event()

    async def on_ready(app: web.Application, addresses: list[tuple[str, int]]) -> None:
        host, port = addresses[0]
        bridge_url = f"http://{host}:{port}"
        from videobridge.daily import DailyClient

        async with DailyClient(api_key=api_key, base_url=emulator_url) as daily:
            await daily.create_webhook(url=f"{bridge_url}/room/hook",
                                       hmac=base64.b64encode(hook_secret).decode(), event_types=EVENTS)
        if check:
            out.write(await self_check(bridge_url, emulator, signer) + "\n")
            stop.set()
        else:
            out.write(instructions(bridge_url, emulator_url, signer) + "\n")
        out.flush()

    try:
        await serve(settings, notifier=LoggingNotifier(), stop=stop, on_ready=on_ready)
    finally:
        await emulator.stop()
