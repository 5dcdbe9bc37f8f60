"""IcNotifier end to end against the fake IC: real HTTP, signatures, certificates, failure modes."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import AsyncIterator, Callable

import pytest
import structlog
from fakeic import FakeIC, Trap, generate_pem, principal_of_pem
from helpers import ALICE, BOB

from videobridge.chats import ChannelChat, DirectChat, GroupChat, room_name
from videobridge.models import Call, CallState, CallType, CanisterKind, Initiator, Notification, NotificationKind
from videobridge.notifier import (
    LOCAL_REJECT,
    Delivered,
    Error,
    IcNotifier,
    LoggingNotifier,
    Rejected,
    Skipped,
    Success,
    TransientNotifyError,
    load_identity,
    plan_end,
    plan_start,
)

GROUP = "ll4qc-niaaa-aaaap-qvfoq-cai"
COMMUNITY = "3v2qj-5qaaa-aaaar-q2qoa-cai"
OPERATOR_PEM = generate_pem()
OPERATOR = principal_of_pem(OPERATOR_PEM)
MakeNotifier = Callable[..., IcNotifier]


@pytest.fixture
def fake(fake_ic: FakeIC) -> FakeIC:
    fake_ic.operators = {OPERATOR}
    fake_ic.add_canister(GROUP, CanisterKind.GROUP)
    fake_ic.add_canister(COMMUNITY, CanisterKind.COMMUNITY)
    fake_ic.add_canister(ALICE, CanisterKind.USER)
    fake_ic.add_canister(BOB, CanisterKind.USER)
    return fake_ic


@pytest.fixture
async def make_notifier(fake: FakeIC) -> AsyncIterator[MakeNotifier]:
    made: list[IcNotifier] = []

    def make(*, pem: str = OPERATOR_PEM, request_timeout: float = 2.0, deadline: float = 5.0) -> IcNotifier:
        notifier = IcNotifier(ic_url=fake.url + "/", identity=load_identity(pem),
                              request_timeout=request_timeout, deadline=deadline, root_key=fake.root_key_der)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


def make_call(chat: GroupChat | ChannelChat | DirectChat, *, starter: str = ALICE) -> Call:
    return Call(room_name=room_name(chat), message_id=2**64 - 3, chat=chat, call_type=CallType.DEFAULT,
                started_by=starter, initiator=Initiator(username="alice", display_name="Alice", avatar_id=42),
                is_diamond=True, state=CallState.STARTING, created_at=0.0, room_exp=3600)


def group_end(message_id: int = 7) -> Notification:
    return Notification(seq=1, message_id=message_id, room_name="Groom", kind=NotificationKind.END,
                        canister_kind=CanisterKind.GROUP, canister_id=GROUP, method="end_video_call_v2",
                        args={"message_id": message_id})


@pytest.mark.parametrize("chat", [GroupChat(GROUP), ChannelChat(COMMUNITY, 2**32 - 1),
                                  DirectChat.between(ALICE, BOB)], ids=["group", "channel", "direct"])
async def test_start_and_end_land_on_the_right_canisters(fake: FakeIC, make_notifier: MakeNotifier,
                                                          chat: GroupChat | ChannelChat | DirectChat) -> None:
    notifier = make_notifier()
    call = make_call(chat)
    notes = plan_start(call, first_seq=1, now=0.0) + plan_end(call, first_seq=2, now=0.0)
    for note in notes:
        assert await notifier.send(note) == Delivered(Success())
    assert [(c.canister_id, c.kind, c.method, c.args) for c in fake.calls] == [
        (n.canister_id, n.canister_kind, n.method, n.args) for n in notes]
    assert all(c.sender == OPERATOR == notifier.principal for c in fake.calls)
    assert fake.refused == 0 and fake.bad_requests == []
    if isinstance(chat, DirectChat):
        start, end_alice, end_bob = fake.calls
        assert start.canister_id == BOB and start.args["initiator"] == ALICE and start.args["user_id"] == BOB
        assert start.args["initiator_avatar_id"] == 42 and start.args["max_duration"] == 7_200_000
        assert (end_alice.canister_id, end_alice.args["user_id"], end_alice.args["them"]) == (ALICE, ALICE, BOB)
        assert (end_bob.canister_id, end_bob.args["user_id"], end_bob.args["them"]) == (BOB, BOB, ALICE)
    assert all(c.ignored == () for c in fake.calls)
    if isinstance(chat, ChannelChat):
        assert [c.args["channel_id"] for c in fake.calls] == [2**32 - 1, 2**32 - 1]


async def test_error_reply_is_delivered(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    fake.reply = Error(101, "Video call type not allowed")
    assert await make_notifier().send(group_end()) == Delivered(Error(101, "Video call type not allowed"))
    fake.reply = lambda call: Error(285, None) if call.args["message_id"] == 8 else Success()
    assert await make_notifier().send(group_end(8)) == Delivered(Error(285, None))


async def test_accepted_then_polled_via_read_state(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    fake.respond_202 = True
    fake.reply = Error(201, "MessageNotFound")
    assert await make_notifier().send(group_end()) == Delivered(Error(201, "MessageNotFound"))
    assert len(fake.calls) == 1 and fake.requests >= 2


async def test_non_operator_is_rejected_and_counted(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    outcome = await make_notifier(pem=generate_pem()).send(group_end())
    assert isinstance(outcome, Rejected) and outcome.code == 5
    assert "not a video call operator" in outcome.message
    assert fake.refused == 1 and fake.calls == []


async def test_trap_and_unknown_canister_are_rejected(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier()
    fake.reply = Trap("boom")
    trapped = await notifier.send(group_end())
    assert isinstance(trapped, Rejected) and trapped.code == 5 and "boom" in trapped.message
    unknown = Notification(seq=2, message_id=1, room_name="x", kind=NotificationKind.END,
                           canister_kind=CanisterKind.GROUP, canister_id="aaaaa-aa",
                           method="end_video_call_v2", args={"message_id": 1})
    outcome = await notifier.send(unknown)
    assert isinstance(outcome, Rejected) and outcome.code == 3


async def test_invalid_notifications_are_refused_locally(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier()
    bad_args = Notification(seq=1, message_id=1, room_name="x", kind=NotificationKind.END,
                            canister_kind=CanisterKind.COMMUNITY, canister_id=COMMUNITY,
                            method="end_video_call_v2", args={"message_id": 1})
    outcome = await notifier.send(bad_args)
    assert isinstance(outcome, Rejected) and outcome.code == LOCAL_REJECT and "channel_id" in outcome.message
    bad_canister = Notification(seq=1, message_id=1, room_name="x", kind=NotificationKind.END,
                                canister_kind=CanisterKind.GROUP, canister_id="nope",
                                method="end_video_call_v2", args={"message_id": 1})
    assert (await notifier.send(bad_canister)).code == LOCAL_REJECT  # type: ignore[union-attr]
    assert fake.requests == 0


async def test_ic_down_is_transient_and_quick(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier()
    fake.go_down()
    started = time.monotonic()
    with pytest.raises(TransientNotifyError) as info:
        await notifier.send(group_end())
    assert time.monotonic() - started < 1.0
    assert info.value.reason == "unsent"  # connection refused: the call surely never left
    fake.heal()
    assert await notifier.send(group_end()) == Delivered(Success())


async def test_http_errors_are_transient(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier()
    fake.fail_with(503)
    with pytest.raises(TransientNotifyError, match="HTTP 503") as info:
        await notifier.send(group_end())
    assert info.value.reason == "transport"
    fake.heal()
    assert await notifier.send(group_end()) == Delivered(Success())


@pytest.mark.parametrize(("request_timeout", "deadline"), [(0.5, 5.0), (10.0, 1.0)],
                         ids=["request-timeout", "deadline"])
async def test_hung_socket_is_transient_within_the_timeout(
        fake: FakeIC, make_notifier: MakeNotifier, request_timeout: float, deadline: float) -> None:
    notifier = make_notifier(request_timeout=request_timeout, deadline=deadline)
    fake.hang()
    started = time.monotonic()
    with pytest.raises(TransientNotifyError) as info:
        await notifier.send(group_end())
    elapsed = time.monotonic() - started
    limit = min(request_timeout, deadline)
    assert limit - 0.1 < elapsed < limit + 0.5
    assert info.value.reason == "timeout"
    fake.heal()  # the same notifier (and its connection pool) keeps working afterwards
    assert await notifier.send(group_end()) == Delivered(Success())


async def test_concurrent_sends(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier()
    outcomes = await asyncio.gather(*(notifier.send(group_end(i)) for i in range(1, 9)))
    assert outcomes == [Delivered(Success())] * 8
    assert sorted(c.args["message_id"] for c in fake.calls) == list(range(1, 9))


async def test_no_resource_warnings(fake: FakeIC) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notifier = IcNotifier(ic_url=fake.url, identity=load_identity(OPERATOR_PEM),
                              request_timeout=0.5, deadline=1.0, root_key=fake.root_key_der)
        assert await notifier.send(group_end()) == Delivered(Success())
        fake.hang()
        with pytest.raises(TransientNotifyError):
            await notifier.send(group_end())
        fake.heal()
        fake.go_down()
        with pytest.raises(TransientNotifyError):
            await notifier.send(group_end())
        fake.heal()
        await notifier.close()
        await notifier.close()  # idempotent
        del notifier
        gc.collect()
        await asyncio.sleep(0)
    assert [str(w.message) for w in caught] == []


async def test_logging_notifier_skips_and_logs() -> None:
    notifier = LoggingNotifier()
    with structlog.testing.capture_logs() as logs:
        assert await notifier.send(group_end(99)) == Skipped()
    await notifier.close()
    (entry,) = logs
    assert entry["event"] == "ic_notification_skipped"
    assert (entry["method"], entry["canister_id"], entry["message_id"]) == ("end_video_call_v2", GROUP, "99")


def test_constructor_checks_its_arguments() -> None:
    identity = load_identity(OPERATOR_PEM)
    with pytest.raises(ValueError, match="http"):
        IcNotifier(ic_url="icp-api.io", identity=identity)
    with pytest.raises(ValueError, match="positive"):
        IcNotifier(ic_url="https://icp-api.io", identity=identity, deadline=0)


# ---- the fake itself must be strict, or the tests above prove little ----

def _post(fake: FakeIC, canister_id: str, envelope: dict[str, object]) -> tuple[int, object]:
    import urllib.error
    import urllib.request

    import cbor2

    request = urllib.request.Request(f"{fake.url}/api/v4/canister/{canister_id}/call",
                                     data=cbor2.dumps(envelope), method="POST",
                                     headers={"Content-Type": "application/cbor"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, cbor2.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def _envelope(*, arg: bytes, canister_id: str = GROUP, method: str = "end_video_call_v2",
              expiry_s: float = 120, tamper: Callable[[dict[str, object]], None] | None = None,
              high_s: bool = False, pem: str = OPERATOR_PEM) -> dict[str, object]:
    import hashlib

    import ecdsa
    from ecdsa.util import sigdecode_string, sigencode_string
    from fakeic import request_id
    from icp_agent.agent import to_request_id

    from videobridge.principal import principal_to_bytes

    key = ecdsa.SigningKey.from_pem(pem)
    der = key.get_verifying_key().to_der()
    content: dict[str, object] = {
        "request_type": "call", "sender": hashlib.sha224(der).digest() + b"\x02",
        "canister_id": principal_to_bytes(canister_id), "method_name": method, "arg": arg,
        "ingress_expiry": time.time_ns() + int(expiry_s * 1e9),
    }
    rid = request_id(content)
    assert rid == to_request_id(content)  # the fake's hash agrees with icp-py-core's
    sig = key.sign(b"\x0aic-request" + rid, hashfunc=hashlib.sha256, sigencode=sigencode_string)
    if high_s:
        r, s = sigdecode_string(sig, key.curve.order)
        s = s if s > key.curve.order // 2 else key.curve.order - s
        sig = sigencode_string(r, s, key.curve.order)
    if tamper is not None:
        tamper(content)
    return {"content": content, "sender_pubkey": der, "sender_sig": sig}


def test_fake_ic_checks_envelopes(fake: FakeIC) -> None:
    from videobridge.notifier import encode_args

    arg = encode_args(CanisterKind.GROUP, "end_video_call_v2", {"message_id": 3})
    assert _post(fake, GROUP, _envelope(arg=arg))[1]["status"] == "replied"  # type: ignore[index]
    assert _post(fake, GROUP, _envelope(arg=arg, high_s=True))[1]["status"] == "replied"  # type: ignore[index]
    assert len(fake.calls) == 2

    def other_arg(content: dict[str, object]) -> None:
        content["arg"] = encode_args(CanisterKind.GROUP, "end_video_call_v2", {"message_id": 4})

    def other_sender(content: dict[str, object]) -> None:
        content["sender"] = bytes(28) + b"\x02"

    assert _post(fake, GROUP, _envelope(arg=arg, tamper=other_arg)) == (400, "invalid signature")
    assert _post(fake, GROUP, _envelope(arg=arg, tamper=other_sender)) == (
        400, "sender does not match sender_pubkey")
    assert _post(fake, GROUP, _envelope(arg=arg, expiry_s=600)) == (400, "ingress_expiry out of range")
    assert _post(fake, GROUP, _envelope(arg=arg, expiry_s=-1)) == (400, "ingress_expiry out of range")
    assert _post(fake, COMMUNITY, _envelope(arg=arg)) == (400, "canister_id does not match the URL")
    assert len(fake.bad_requests) == 5 and len(fake.calls) == 2


def test_fake_ic_checks_candid_and_methods(fake: FakeIC) -> None:
    from icp_candid import Types, encode

    as_nat = encode([{"type": Types.Record({"channel_id": Types.Nat, "message_id": Types.Nat64}),
                      "value": {"channel_id": 1, "message_id": 1}}])
    status, body = _post(fake, COMMUNITY, _envelope(arg=as_nat, canister_id=COMMUNITY))
    assert status == 200 and body["status"] == "replied"  # type: ignore[index]
    # The certified reject is inside the certificate: decode it the way the client does.
    import cbor2
    from icp_certificate.certificate import Certificate

    def rejection(body: object) -> dict[str, object]:
        cert = Certificate(cbor2.loads(body["certificate"]))  # type: ignore[index]
        (path,) = [p for p in cert.list_paths() if p[0] == b"request_status" and p[-1] == b"status"]
        return cert.lookup_request_rejection(path[1])

    assert rejection(body)["reject_code"] == 5
    assert "nat32" in str(rejection(body)["reject_message"])
    group_arg = encode([{"type": Types.Record({"message_id": Types.Nat64}), "value": {"message_id": 1}}])
    _, body = _post(fake, COMMUNITY, _envelope(arg=group_arg, canister_id=COMMUNITY))
    assert rejection(body)["reject_code"] == 5  # missing channel_id
    _, body = _post(fake, GROUP, _envelope(arg=group_arg, method="start_video_call"))
    assert rejection(body)["reject_code"] == 3
    assert fake.calls == []


def test_fake_ic_status_endpoint(fake: FakeIC) -> None:
    import urllib.request

    import cbor2

    with urllib.request.urlopen(f"{fake.url}/api/v2/status", timeout=5) as response:
        status = cbor2.loads(response.read())
    assert len(status["root_key"]) == 133


async def test_a_canister_that_does_not_exist_is_a_settled_rejection(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    # In a subnet's range but not created (or deleted): the replica's non-replicated rejection.
    del fake.canisters[COMMUNITY]
    gone = Notification(seq=1, message_id=1, room_name="x", kind=NotificationKind.END,
                        canister_kind=CanisterKind.COMMUNITY, canister_id=COMMUNITY,
                        method="end_video_call_v2", args={"channel_id": 1, "message_id": 1})
    outcome = await make_notifier().send(gone)
    assert outcome == Rejected(3, f"Canister {COMMUNITY} not found", "IC0301")
    assert fake.calls == []


async def test_a_canister_no_subnet_hosts_is_a_settled_rejection(fake: FakeIC, make_notifier: MakeNotifier) -> None:
    # No subnet's range holds the id: the boundary node answers HTTP 400 canister_not_found, which
    # would otherwise look like a transport error and be retried for ever.
    fake.unrouted = {GROUP}
    outcome = await make_notifier().send(group_end())
    assert isinstance(outcome, Rejected) and outcome.code == 3 and outcome.error_code == "canister_not_found"
    assert "does not exist" in outcome.message
    assert fake.calls == [] and fake.requests == 1
