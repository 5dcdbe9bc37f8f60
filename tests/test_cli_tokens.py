"""`videobridge token mint|decode`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
from cli_support import (
    ALICE,
    GROUP,
    Servers,
    base_env,
    daily_env,
    invoke,
    make_room,
    one_line_error,
    room_config,
)

from videobridge.devjwt import DevSigner

GROUP_ROOM = "GAAAAAAHwqV0BAQ"


def test_mint_self_signs_a_token_that_joins_the_room(servers: Servers, workdir: Path) -> None:
    make_room(servers, "debug")
    env = daily_env(servers, workdir / "state.json")
    result = invoke(["token", "mint", "debug", "--user-id", "ops", "--user-name", "Ops", "--owner"], env)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    claims = jwt.decode(token, servers.api_key, algorithms=["HS256"])
    assert claims["r"] == "debug" and claims["d"] == servers.emulator.domain_id
    assert claims["ud"] == "ops" and claims["u"] == "Ops" and claims["o"] is True
    assert claims["exp"] == room_config(servers, "debug")["exp"]  # like the bridge: tokens live as long as the room
    assert "expires" in result.stderr
    servers.run(lambda: servers.emulator.join("debug", token))  # Daily (the emulator) accepts it
    assert servers.emulator.requests["POST /meeting-tokens"] == 0


def test_mint_json_ttl_and_broadcast_audience(servers: Servers, workdir: Path) -> None:
    env = daily_env(servers, workdir / "state.json", DAILY_DOMAIN_ID=None)
    assert invoke(["rooms", "create", "--chat", f"group:{GROUP}", "--broadcast"], env).exit_code == 0
    result = invoke(["token", "mint", GROUP_ROOM, "--user-id", ALICE, "--user-name", "alice", "--ttl", "15m",
                     "--json"], env)
    assert result.exit_code == 0, result.output
    minted = json.loads(result.stdout)
    assert minted["selfSigned"] is True and minted["room"] == GROUP_ROOM
    assert abs(minted["exp"] - (time.time() + 900)) < 5
    assert minted["claims"] == jwt.decode(minted["token"], servers.api_key, algorithms=["HS256"])
    # not the owner of a Broadcast room: hidden, receive only, camera and mic off (as the service mints)
    assert minted["claims"]["p"] == {"hp": False, "cs": False, "ca": False}
    assert minted["claims"]["vo"] is True and minted["claims"]["ao"] is True

    with_domain = daily_env(servers, workdir / "state.json", DAILY_DOMAIN_ID=servers.emulator.domain_id)
    before = servers.emulator.requests["GET /"]
    assert invoke(["token", "mint", GROUP_ROOM, "--user-id", "x", "--user-name", "x"], with_domain).exit_code == 0
    assert servers.emulator.requests["GET /"] == before  # a configured domain id costs no request


def test_mint_mistakes(servers: Servers, workdir: Path) -> None:
    env = daily_env(servers, workdir / "state.json")
    args = ["--user-id", "ops", "--user-name", "Ops"]
    one_line_error(invoke(["token", "mint", "nowhere", *args], env), 1, "no Daily room named nowhere")
    one_line_error(invoke(["token", "mint", "debug", *args, "--ttl", "soon"], env), 2, "--ttl")
    one_line_error(invoke(["token", "mint", "debug", *args], base_env()), 2, "DAILY_API_KEY")
    one_line_error(invoke(["token", "mint", "debug", "--user-id", " ", "--user-name", "Ops"], env), 2, "empty")


def test_decode_daily_token_verifies_with_the_api_key(servers: Servers, workdir: Path) -> None:
    make_room(servers, "debug")
    env = daily_env(servers, workdir / "state.json")
    token = invoke(["token", "mint", "debug", "--user-id", "ops", "--user-name", "Ops"], env).stdout.strip()

    result = invoke(["token", "decode", token, "--json"], env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "daily" and report["signature"] == "verified" and report["room"] == "debug"
    assert report["claims"]["ud"] == "ops" and report["expired"] is False

    human = invoke(["token", "decode", "-"], env, input=token + "\n")
    assert human.exit_code == 0, human.output
    assert "verified with DAILY_API_KEY" in human.stdout and "r (room_name)" in human.stdout
    assert servers.api_key not in human.output and servers.api_key not in result.output

    unchecked = invoke(["token", "decode", token, "--json"], base_env())
    assert unchecked.exit_code == 0 and json.loads(unchecked.stdout)["signature"] == "unchecked"
    assert "DAILY_API_KEY is not set" in unchecked.stderr

    other_key = base_env(DAILY_API_KEY="another-domains-key-" + "y" * 24)
    one_line_error(invoke(["token", "decode", token], other_key), 1, "does not verify with DAILY_API_KEY")


def test_decode_openchat_jwt(workdir: Path) -> None:
    signer, stranger = DevSigner(), DevSigner()
    env = base_env(OC_PUBLIC=signer.public_pem)
    token = signer.video_call_token("StartVideoCall", user_id=ALICE, chat_id={"Group": GROUP})

    result = invoke(["token", "decode", token, "--json"], env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "openchat" and report["alg"] == "ES256" and report["signature"] == "verified"
    assert report["room"] == GROUP_ROOM and report["claims"]["claim_type"] == "StartVideoCall"
    assert "OpenChat JWT" in invoke(["token", "decode", token], env).stdout

    forged = stranger.video_call_token("StartVideoCall", user_id=ALICE, chat_id={"Group": GROUP})
    one_line_error(invoke(["token", "decode", forged], env), 1, "does not verify with OC_PUBLIC")
    expired = signer.video_call_token("JoinVideoCall", user_id=ALICE, chat_id={"Group": GROUP},
                                      exp=int(time.time()) - 60)
    one_line_error(invoke(["token", "decode", expired], env), 1, "expired")


def test_decode_rejects_what_is_not_a_jwt(workdir: Path) -> None:
    one_line_error(invoke(["token", "decode", "hello"], base_env()), 2, "not a JWT")
    one_line_error(invoke(["token", "decode", "a.b.c"], base_env()), 2, "not a JWT")


def test_mint_audio_tokens_send_audio_only(servers: Servers, workdir: Path) -> None:
    make_room(servers, "debug")
    env = daily_env(servers, workdir / "state.json")
    result = invoke(["token", "mint", "debug", "--user-id", "ops", "--user-name", "Ops", "--audio", "--json"], env)
    assert result.exit_code == 0, result.output
    claims = json.loads(result.stdout)["claims"]
    assert claims["vo"] is True and claims["p"] == {"hp": True, "cs": "a", "ca": False}
    servers.run(lambda: servers.emulator.join("debug", json.loads(result.stdout)["token"]))
    [p] = servers.emulator.participants("debug")
    assert p.can_send == {"audio"} and p.start_video_off
    human = invoke(["token", "decode", json.loads(result.stdout)["token"]], env)
    assert human.exit_code == 0 and "audio only" in human.stdout
    assert invoke(["rooms", "create", "--chat", f"group:{GROUP}", "--broadcast"], env).exit_code == 0
    one_line_error(invoke(["token", "mint", GROUP_ROOM, "--user-id", "x", "--user-name", "x", "--audio"], env),
                   2, "Broadcast room")


def test_decode_shows_what_the_bridge_makes_of_new_claim_types(workdir: Path) -> None:
    signer = DevSigner()
    env = base_env(OC_PUBLIC=signer.public_pem)
    lui = "nq4qv-wqaaa-aaaaf-bhdgq-cai"
    cases = {
        signer.video_call_token("StartVideoCall", user_id=ALICE, chat_id={"Group": GROUP}, audio_only=True):
            {"claimType": "StartVideoCall", "callType": "Audio", "paths": ["GET /room/meeting_access_token"]},
        signer.video_call_token("DeclineVideoCall", user_id=ALICE, chat_id={"Group": GROUP},
                                message_id=str(2**64 - 1), local_user_index=lui):
            {"claimType": "DeclineVideoCall", "messageId": str(2**64 - 1), "localUserIndex": lui,
             "paths": ["POST /room/decline"]},
        signer.video_call_token("VideoCallParticipant", user_id=ALICE, chat_id={"Group": GROUP},
                                local_user_index=lui):
            {"claimType": "VideoCallParticipant", "localUserIndex": lui,
             "paths": ["POST /room/decline", "POST /room/leave"]},
        signer.video_call_token("JoinVideoCall", user_id=ALICE, chat_id={"Group": GROUP}):
            {"claimType": "JoinVideoCall", "paths": ["GET /room/meeting_access_token", "POST /room/leave"]},
    }
    for token, expected in cases.items():
        result = invoke(["token", "decode", token, "--json"], env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["videoCall"] == {"valid": True, **expected}
    human = invoke(["token", "decode", next(iter(cases))], env).stdout
    assert "Audio" in human and "accepted by" in human
    bad = signer.video_call_token("DeclineVideoCall", user_id=ALICE, chat_id={"Group": GROUP}, message_id="0",
                                  local_user_index=lui)
    report = json.loads(invoke(["token", "decode", bad, "--json"], env).stdout)
    assert report["videoCall"]["valid"] is False and "message_id" in report["videoCall"]["problem"]
    assert "refuses it" in invoke(["token", "decode", bad], env).stdout
