"""OpenChat JWTs: the exact wire format, the claim whitelist, typed claims."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from videobridge.auth import ClaimType, JwtVerifier, parse_claims
from videobridge.chats import ChannelChat, DirectChat, GroupChat
from videobridge.devjwt import DevSigner
from videobridge.errors import AuthError
from videobridge.models import CallType

EXAMPLES = json.loads((Path(__file__).parents[2] / "shared/reference/openchat-claims-examples.json").read_text()) \
    if (Path(__file__).parents[2] / "shared/reference/openchat-claims-examples.json").exists() else None


@pytest.fixture(name="verifier")
def _verifier(signer: DevSigner) -> JwtVerifier:
    return JwtVerifier(signer.public_pem)


@pytest.mark.skipif(EXAMPLES is None, reason="shared/reference is not beside the checkout")
def test_the_backend_examples_parse(signer, verifier):
    expected = {"start_group": (ClaimType.START, GroupChat, CallType.DEFAULT, True),
                "join_group": (ClaimType.JOIN, GroupChat, CallType.DEFAULT, False),
                "start_direct": (ClaimType.START, DirectChat, CallType.DEFAULT, False),
                "start_channel": (ClaimType.START, ChannelChat, CallType.BROADCAST, True)}
    for example in EXAMPLES["examples"]:
        payload = dict(example["payload"], exp=int(time.time()) + 300)
        claims = verifier.verify(signer.sign(payload))
        kind, chat_type, call_type, diamond = expected[example["name"]]
        assert (claims.claim_type, type(claims.chat), claims.call_type, claims.is_diamond) == \
            (kind, chat_type, call_type, diamond)
        assert claims.user_id == payload["user_id"]


def test_end_claims(signer, verifier):
    token = signer.video_call_token("MarkVideoCallAsEnded", user_id="724ke-xyaaa-aaaan-ayptq-cai",
                                    chat_id={"Channel": ["3v2qj-5qaaa-aaaar-q2qoa-cai", "2846315027"]})
    claims = verifier.verify(token)
    assert claims.claim_type is ClaimType.END and claims.chat == ChannelChat("3v2qj-5qaaa-aaaar-q2qoa-cai", 2846315027)


def test_wire_format_is_exact(signer):
    head, body, sig = signer.video_call_token("JoinVideoCall", user_id="724ke-xyaaa-aaaan-ayptq-cai",
                                              chat_id={"Group": "ll4qc-niaaa-aaaap-qvfoq-cai"}).split(".")
    assert head == "eyJhbGciOiJFUzI1NiJ9" and "=" not in body + sig and len(sig) == 86  # 64 raw bytes


def test_pyjwt_style_header_with_typ_is_tolerated(signer, verifier):
    token = signer.sign({"exp": int(time.time()) + 60, "claim_type": "JoinVideoCall",
                         "user_id": "724ke-xyaaa-aaaan-ayptq-cai", "chat_id": {"Group": "ll4qc-niaaa-aaaap-qvfoq-cai"}},
                        header={"alg": "ES256", "typ": "JWT"})
    assert verifier.verify(token).claim_type is ClaimType.JOIN


def test_parse_claims_refuses_what_openchat_would_not_mint():
    good = {"exp": int(time.time()) + 60, "claim_type": "StartVideoCall", "user_id": "724ke-xyaaa-aaaan-ayptq-cai",
            "chat_id": {"Group": "ll4qc-niaaa-aaaap-qvfoq-cai"}, "call_type": "Default", "is_diamond": False}
    assert parse_claims(good).claim_type is ClaimType.START
    for change in ({"claim_type": "BotActionByCommand"}, {"exp": True}, {"user_id": None}, {"chat_id": []},
                   {"call_type": None}, {"is_diamond": 1}, {"exp": int(time.time()) - 3600}):
        with pytest.raises(AuthError):
            parse_claims({**good, **change})


NEW = {"exp": int(time.time()) + 60, "user_id": "724ke-xyaaa-aaaan-ayptq-cai",
       "chat_id": {"Group": "ll4qc-niaaa-aaaap-qvfoq-cai"}}
LUI = "nq4qv-wqaaa-aaaaf-bhdgq-cai"


def test_audio_only_makes_a_default_start_an_audio_call_and_leaves_broadcast_alone():
    start = {**NEW, "claim_type": "StartVideoCall", "call_type": "Default", "is_diamond": False}
    assert parse_claims(start).call_type is CallType.DEFAULT  # an older client: no audio_only
    assert parse_claims({**start, "audio_only": False}).call_type is CallType.DEFAULT
    assert parse_claims({**start, "audio_only": True}).call_type is CallType.AUDIO
    assert parse_claims({**start, "call_type": "Broadcast", "audio_only": True}).call_type is CallType.BROADCAST
    for bad in ({"audio_only": "yes"}, {"audio_only": 1}, {"call_type": "Audio"}):
        with pytest.raises(AuthError):
            parse_claims({**start, **bad})


def test_participant_and_decline_claims_carry_their_fields():
    participant = parse_claims({**NEW, "claim_type": "VideoCallParticipant", "local_user_index": LUI})
    assert (participant.claim_type, participant.local_user_index, participant.message_id) == \
        (ClaimType.PARTICIPANT, LUI, None)
    assert parse_claims({**NEW, "claim_type": "VideoCallParticipant", "local_user_index": None}).local_user_index is None
    join = parse_claims({**NEW, "claim_type": "JoinVideoCall", "local_user_index": LUI})
    assert join.claim_type is ClaimType.JOIN and join.local_user_index == LUI
    decline = parse_claims({**NEW, "claim_type": "DeclineVideoCall", "message_id": str(2**64 - 1),
                            "local_user_index": LUI})
    assert (decline.claim_type, decline.message_id, decline.local_user_index) == (ClaimType.DECLINE, 2**64 - 1, LUI)


def test_decline_claims_refuse_a_bad_message_id_or_local_user_index():
    decline = {**NEW, "claim_type": "DeclineVideoCall", "message_id": "12345", "local_user_index": LUI}
    for bad in ({"message_id": "0"}, {"message_id": str(2**64)}, {"message_id": "-1"}, {"message_id": "1e5"},
                {"message_id": None}, {"message_id": True}, {"local_user_index": None},
                {"local_user_index": "not-a-principal"}):
        with pytest.raises(AuthError):
            parse_claims({**decline, **bad})
    with pytest.raises(AuthError):
        parse_claims({**NEW, "claim_type": "JoinVideoCall", "local_user_index": 7})


@pytest.mark.parametrize(("accept", "allowed"), [
    ("ACCESS_CLAIMS", {"StartVideoCall", "JoinVideoCall"}),
    ("END_CLAIMS", {"MarkVideoCallAsEnded"}),
    ("DECLINE_CLAIMS", {"DeclineVideoCall", "VideoCallParticipant"}),
    ("LEAVE_CLAIMS", {"VideoCallParticipant", "JoinVideoCall"}),
])
def test_each_endpoint_takes_only_its_own_claim_types(signer, verifier, accept, allowed):
    import videobridge.auth as auth

    fields = {"StartVideoCall": {"call_type": "Default", "is_diamond": False},
              "DeclineVideoCall": {"message_id": "42", "local_user_index": LUI},
              "VideoCallParticipant": {"local_user_index": LUI}}
    for claim_type in (t.value for t in ClaimType):
        token = signer.sign({**NEW, "claim_type": claim_type, **fields.get(claim_type, {})})
        if claim_type in allowed:
            assert verifier.verify(token, accept=getattr(auth, accept)).claim_type.value == claim_type
        else:
            with pytest.raises(AuthError, match="not accepted here"):
                verifier.verify(token, accept=getattr(auth, accept))
