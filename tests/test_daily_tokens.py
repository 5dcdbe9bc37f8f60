"""Meeting tokens: exact self-signed claims per role, the REST fallback, and Daily-like validation
by the emulator."""

from __future__ import annotations

import time
from dataclasses import replace

import aiohttp
import daily_fixtures
import jwt
import pytest
from daily_fixtures import API_KEY, WRONG_KEY, hour_from_now

from videobridge.daily import (
    DailyClient,
    DailyRejected,
    TokenGrant,
    TokenMinter,
    rest_token_properties,
    self_signed_token,
)
from videobridge.emulator import DailyEmulator, EmulatorError

# Shared fixtures (module-level names so pytest finds them; they shadow conftest.py's).
client = daily_fixtures.client
emulator = daily_fixtures.emulator

DOMAIN_ID = "30f866c3-9123-452a-8723-ff58322d09c5"
NOW = 1_700_000_000
EXP = NOW + 3600


def grant(*, owner: bool, broadcast: bool, room: str = "GAAAAAAHwqV0BAQ", exp: int = EXP) -> TokenGrant:
    return TokenGrant(
        room_name=room, user_id="724ke-xyaaa-aaaan-ayptq-cai", user_name="alice", owner=owner,
        broadcast=broadcast, exp=exp,
    )  # fmt: skip


def decode(token: str) -> dict[str, object]:
    return jwt.decode(token, API_KEY, algorithms=["HS256"], options={"verify_exp": False})


BASE_CLAIMS = {"r": "GAAAAAAHwqV0BAQ", "d": DOMAIN_ID, "iat": NOW, "exp": EXP,
               "ud": "724ke-xyaaa-aaaan-ayptq-cai", "u": "alice"}  # fmt: skip


@pytest.mark.parametrize("broadcast", [False, True])
def test_owner_claims(broadcast: bool) -> None:
    token = self_signed_token(grant(owner=True, broadcast=broadcast), api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW)
    assert decode(token) == {**BASE_CLAIMS, "o": True, "p": {"hp": True, "cs": True, "ca": True}}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_participant_claims_in_a_default_call() -> None:
    token = self_signed_token(grant(owner=False, broadcast=False), api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW)
    assert decode(token) == {**BASE_CLAIMS, "o": False, "p": {"hp": True, "cs": True, "ca": False}}


def test_audience_claims_in_a_broadcast() -> None:
    token = self_signed_token(grant(owner=False, broadcast=True), api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW)
    assert decode(token) == {
        **BASE_CLAIMS, "o": False, "vo": True, "ao": True, "p": {"hp": False, "cs": False, "ca": False},
    }  # fmt: skip


def test_user_id_is_truncated_to_36_chars() -> None:
    long = TokenGrant(room_name="r", user_id="x" * 63, user_name="n", owner=False, broadcast=False, exp=EXP)
    claims = decode(self_signed_token(long, api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW))
    assert claims["ud"] == "x" * 36
    assert rest_token_properties(long)["user_id"] == "x" * 36


def test_tokens_do_not_verify_with_another_key() -> None:
    token = self_signed_token(grant(owner=True, broadcast=False), api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, WRONG_KEY, algorithms=["HS256"], options={"verify_exp": False})


def test_rest_properties_per_role() -> None:
    base = {"room_name": "GAAAAAAHwqV0BAQ", "user_id": "724ke-xyaaa-aaaan-ayptq-cai", "user_name": "alice", "exp": EXP}
    assert rest_token_properties(grant(owner=True, broadcast=True)) == {
        **base, "is_owner": True, "permissions": {"hasPresence": True, "canSend": True, "canAdmin": True},
    }  # fmt: skip
    assert rest_token_properties(grant(owner=False, broadcast=False)) == {
        **base, "is_owner": False, "permissions": {"hasPresence": True, "canSend": True, "canAdmin": False},
    }  # fmt: skip
    assert rest_token_properties(grant(owner=False, broadcast=True)) == {
        **base, "is_owner": False, "start_video_off": True, "start_audio_off": True,
        "permissions": {"hasPresence": False, "canSend": False, "canAdmin": False},
    }  # fmt: skip


def test_self_signing_is_deterministic() -> None:
    # Its speed is measured in tests/bench/costs.py, not asserted here.
    g = grant(owner=False, broadcast=True)
    tokens = {self_signed_token(g, api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW) for _ in range(200)}
    assert len(tokens) == 1


async def test_minter_self_signs_without_network() -> None:
    minter = TokenMinter(api_key=API_KEY, domain_id=DOMAIN_ID, client=None, clock=lambda: NOW + 0.7)
    assert minter.self_signing
    token = await minter.mint(grant(owner=True, broadcast=False))
    assert decode(token)["iat"] == NOW and decode(token)["d"] == DOMAIN_ID
    assert API_KEY not in repr(minter)


async def test_minter_switches_to_self_signing(client: DailyClient, emulator: DailyEmulator) -> None:
    minter = TokenMinter(api_key=API_KEY, domain_id=None, client=client)
    minter.set_domain_id((await client.get_domain()).domain_id)
    assert minter.self_signing
    token = await minter.mint(grant(owner=True, broadcast=False))
    assert decode(token)["d"] == emulator.domain_id and emulator.requests["POST /meeting-tokens"] == 0


def test_minter_needs_a_domain_or_a_client() -> None:
    with pytest.raises(ValueError):
        TokenMinter(api_key=API_KEY, domain_id=None, client=None)


# -- through the emulator ------------------------------------------------------------------------


async def _room(client: DailyClient, name: str = "room1", **props: object) -> int:
    exp = hour_from_now()
    await client.create_room(name, properties={"exp": exp, **props})
    return exp


@pytest.mark.parametrize(("owner", "broadcast"), [(True, False), (False, False), (False, True), (True, True)])
async def test_emulator_accepts_self_signed_tokens(
    client: DailyClient, emulator: DailyEmulator, owner: bool, broadcast: bool
) -> None:
    exp = await _room(client)
    minter = TokenMinter(api_key=API_KEY, domain_id=emulator.domain_id, client=None)
    session = emulator.join("room1", await minter.mint(grant(owner=owner, broadcast=broadcast, room="room1", exp=exp)))
    [p] = emulator.participants("room1")
    audience = broadcast and not owner
    assert p.session_id == session and p.owner is owner and p.token_exp == exp
    assert p.user_id == "724ke-xyaaa-aaaan-ayptq-cai" and p.user_name == "alice"
    assert p.permissions == {"hasPresence": not audience, "canSend": not audience, "canAdmin": owner}
    assert (p.start_video_off, p.start_audio_off) == (audience, audience)


async def test_rest_fallback_through_emulator(client: DailyClient, emulator: DailyEmulator) -> None:
    exp = await _room(client)
    minter = TokenMinter(api_key=API_KEY, domain_id=None, client=client)
    assert not minter.self_signing
    token = await minter.mint(grant(owner=False, broadcast=True, room="room1", exp=exp))
    assert emulator.requests["POST /meeting-tokens"] == 1
    emulator.join("room1", token)
    [p] = emulator.participants("room1")
    assert p.owner is False and p.permissions == {"hasPresence": False, "canSend": False, "canAdmin": False}
    assert p.start_video_off and p.start_audio_off
    with pytest.raises(jwt.InvalidSignatureError):  # Daily signs API tokens with its own secret
        jwt.decode(token, API_KEY, algorithms=["HS256"], options={"verify_exp": False})


def _signed(claims: dict[str, object], key: str = API_KEY) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


async def test_emulator_rejects_bad_tokens(client: DailyClient, emulator: DailyEmulator) -> None:
    exp = await _room(client)
    await _room(client, "other")
    now = int(time.time())
    good = {"r": "room1", "d": emulator.domain_id, "iat": now, "exp": exp, "ud": "u", "u": "n", "o": False}
    cases = {
        "wrong key": (_signed(good, WRONG_KEY), "invalid-token"),
        "wrong room": (_signed({**good, "r": "other"}), "invalid-token"),
        "wrong domain": (_signed({**good, "d": DOMAIN_ID}), "invalid-token"),
        "expired": (_signed({**good, "exp": now - 1}), "exp-token"),
        "not yet": (_signed({**good, "nbf": now + 60}), "nbf-token"),
        "long names": (_signed({**good, "room_name": "room1"}), "invalid-token"),
        "no domain": (_signed({k: v for k, v in good.items() if k != "d"}), "invalid-token"),
        "garbage": ("not-a-jwt", "invalid-token"),
        "alg none": (jwt.encode(good, "", algorithm="none"), "invalid-token"),
    }
    for label, (token, reason) in cases.items():
        with pytest.raises(EmulatorError) as caught:
            emulator.join("room1", token)
        assert caught.value.reason == reason, label
    assert emulator.participants("room1") == []
    emulator.join("room1", _signed(good))  # and the good one still works


async def test_emulator_room_rules(client: DailyClient, emulator: DailyEmulator) -> None:
    now = int(time.time())
    minter = TokenMinter(api_key=API_KEY, domain_id=emulator.domain_id, client=None)
    exp = await _room(client, "small", max_participants=1)
    await _room(client, "later", nbf=now + 600)
    g = grant(owner=False, broadcast=False, room="small", exp=exp)
    emulator.join("small", await minter.mint(g))
    for room, reason in [("small", "meeting-full"), ("missing", "no-room"), ("later", "nbf-room")]:
        with pytest.raises(EmulatorError) as caught:
            emulator.join(room, await minter.mint(replace(g, room_name=room)))
        assert caught.value.reason == reason
    await _room(client, "closed")
    with pytest.raises(EmulatorError, match="not-allowed"):
        emulator.join("closed", None)  # private rooms need a token


async def test_validate_endpoint(client: DailyClient, emulator: DailyEmulator) -> None:
    assert emulator.base_url
    exp = await _room(client)
    token = await client.create_meeting_token({"room_name": "room1", "is_owner": True, "exp": exp})
    headers = {"Authorization": f"Bearer {API_KEY}"}
    expired = _signed({"r": "room1", "d": emulator.domain_id, "iat": 1, "exp": 2})
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{emulator.base_url}/meeting-tokens/{token}") as resp:
            assert resp.status == 200
            assert await resp.json() == {"room_name": "room1", "is_owner": True, "exp": exp}
        async with http.get(f"{emulator.base_url}/meeting-tokens/{expired}") as resp:
            assert resp.status == 400 and "exp-token" in (await resp.json())["info"]


async def test_rest_token_properties_are_validated(client: DailyClient) -> None:
    with pytest.raises(DailyRejected, match="user_id"):
        await client.create_meeting_token({"room_name": "r", "user_id": "x" * 37})
    with pytest.raises(DailyRejected, match="unknown property"):
        await client.create_meeting_token({"r": "short names are for self-signed tokens"})


# -- audio calls (SPEC §9) -----------------------------------------------------------------------


@pytest.mark.parametrize("owner", [True, False])
def test_audio_tokens_send_audio_only_and_start_with_the_camera_off(owner: bool) -> None:
    audio = replace(grant(owner=owner, broadcast=False), audio_only=True)
    token = self_signed_token(audio, api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW)
    assert decode(token) == {**BASE_CLAIMS, "o": owner, "vo": True, "p": {"hp": True, "cs": "a", "ca": owner}}
    base = {"room_name": "GAAAAAAHwqV0BAQ", "user_id": "724ke-xyaaa-aaaan-ayptq-cai", "user_name": "alice", "exp": EXP}
    assert rest_token_properties(audio) == {
        **base, "is_owner": owner, "start_video_off": True,
        "permissions": {"hasPresence": True, "canSend": ["audio"], "canAdmin": owner},
    }  # fmt: skip


@pytest.mark.parametrize("self_signing", [True, False])
@pytest.mark.parametrize("owner", [True, False])
async def test_emulator_takes_audio_tokens_as_audio_only(
    client: DailyClient, emulator: DailyEmulator, owner: bool, self_signing: bool
) -> None:
    exp = await _room(client)
    minter = TokenMinter(api_key=API_KEY, domain_id=emulator.domain_id if self_signing else None, client=client)
    token = await minter.mint(replace(grant(owner=owner, broadcast=False, room="room1", exp=exp), audio_only=True))
    emulator.join("room1", token)
    [p] = emulator.participants("room1")
    assert p.can_send == {"audio"} and p.start_video_off and not p.start_audio_off
    assert p.owner is owner and p.permissions["canAdmin"] is owner
    assert emulator.requests["POST /meeting-tokens"] == (0 if self_signing else 1)


async def test_emulator_refuses_permissions_daily_would_not_understand(
    client: DailyClient, emulator: DailyEmulator
) -> None:
    exp = await _room(client)
    good = {"r": "room1", "d": emulator.domain_id, "iat": int(time.time()), "exp": exp, "ud": "u", "u": "n"}
    for bad in ({"p": {"cs": "a,x"}}, {"p": {"cs": ["audio"]}}, {"p": {"canSend": "a"}}, {"p": {"hp": "yes"}},
                {"p": "a"}, {"vo": "true"}, {"o": 1}, {"p": {"ca": "z"}}):
        with pytest.raises(EmulatorError) as caught:
            emulator.join("room1", _signed({**good, **bad}))
        assert caught.value.reason == "invalid-token", bad
    for bad_rest in ({"permissions": {"canSend": ["a"]}}, {"permissions": {"canSend": "audio"}},
                     {"start_video_off": "yes"}, {"permissions": {"sendOnly": True}}):
        with pytest.raises(DailyRejected):
            await client.create_meeting_token({"room_name": "room1", **bad_rest})
    emulator.join("room1", _signed({**good, "vo": True, "p": {"hp": True, "cs": "v,a,sv", "ca": "p"}}))
    [p] = emulator.participants("room1")
    assert p.can_send == {"video", "audio", "screenVideo"} and p.permissions["canAdmin"] == ["participants"]


@pytest.mark.parametrize("audio_only", [False, True])
@pytest.mark.parametrize("owner", [False, True])
@pytest.mark.parametrize("broadcast", [False, True])
@pytest.mark.parametrize("name", ["alice", 'a "quoted" \\ name', "ünïcødé 名前 \U0001f600", "tab\tnew\nline\x00"])
def test_self_signed_tokens_are_byte_identical_to_pyjwt(audio_only: bool, owner: bool, broadcast: bool,
                                                        name: str) -> None:
    from videobridge.daily.tokens import token_claims

    g = TokenGrant(room_name="GAAAAAAHwqV0BAQ", user_id="x" * 40 + "\u00e9", user_name=name, owner=owner,
                   broadcast=broadcast, exp=EXP, audio_only=audio_only)
    expected = jwt.encode(token_claims(g, domain_id=DOMAIN_ID, now=NOW), API_KEY, algorithm="HS256")
    assert self_signed_token(g, api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW) == expected
    odd = replace(g, exp=float(EXP), owner=1)  # type: ignore[arg-type]  # not the written-out path
    assert self_signed_token(odd, api_key=API_KEY, domain_id=DOMAIN_ID, now=NOW) == jwt.encode(
        token_claims(odd, domain_id=DOMAIN_ID, now=NOW), API_KEY, algorithm="HS256")
