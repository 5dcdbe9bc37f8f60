"""IC replies count only with a certificate that verifies: against the fake IC, which signs its
certificates under its own test root key (through a subnet delegation) and can sign wrongly.

A reply that fails verification is like a lost reply: not delivered, retried, counted, and
delivered once the IC answers with a good certificate again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import structlog
from aiohttp.test_utils import TestClient
from fakeic import CERTIFICATE_FAULTS, FakeIC, principal_of_pem
from helpers import GROUP, bridge_of, eventually, get_token, start_token
from ic_support import FAST_RETRY, OPERATOR_PEM

from videobridge.models import CanisterKind, Notification, NotificationKind
from videobridge.notifier import Delivered, IcNotifier, Success, TransientNotifyError, load_identity


@pytest.fixture
def fake(fake_ic: FakeIC) -> FakeIC:
    fake_ic.operators = {principal_of_pem(OPERATOR_PEM)}
    fake_ic.add_canister(GROUP, CanisterKind.GROUP)
    return fake_ic


@pytest.fixture
async def make_notifier(fake: FakeIC) -> AsyncIterator[Callable[..., IcNotifier]]:
    made: list[IcNotifier] = []

    def make(**kw: object) -> IcNotifier:
        notifier = IcNotifier(ic_url=fake.url, identity=load_identity(OPERATOR_PEM),
                              request_timeout=2.0, deadline=5.0, **kw)  # type: ignore[arg-type]
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


def group_end(message_id: int = 7) -> Notification:
    return Notification(seq=message_id, room_name="r", message_id=message_id, kind=NotificationKind.END,
                        canister_kind=CanisterKind.GROUP, canister_id=GROUP, method="end_video_call_v2",
                        args={"message_id": message_id})


async def test_good_certificates_are_delivered_with_and_without_a_delegation(fake, make_notifier) -> None:
    notifier = make_notifier(root_key=fake.root_key_der)
    assert await notifier.send(group_end(1)) == Delivered(Success())
    fake.delegate = False  # signed by the root key itself, as the NNS subnet answers
    assert await notifier.send(group_end(2)) == Delivered(Success())
    fake.respond_202 = True  # the answer comes from read_state polling
    assert await notifier.send(group_end(3)) == Delivered(Success())
    assert [c.args["message_id"] for c in fake.calls] == [1, 2, 3]


@pytest.mark.parametrize("respond_202", [False, True], ids=["call", "read_state"])
@pytest.mark.parametrize("fault", sorted(CERTIFICATE_FAULTS))
async def test_a_badly_signed_reply_is_not_delivered(fake, make_notifier, fault: str, respond_202: bool) -> None:
    fake.respond_202 = respond_202
    notifier = make_notifier(root_key=fake.root_key_der)
    fake.sign_wrongly(fault)
    with pytest.raises(TransientNotifyError) as info:
        await notifier.send(group_end())
    assert info.value.reason == "certificate"
    assert str(info.value).startswith("certificate verification failed: ")
    assert len(fake.calls) == 1, "the canister ran the call; only its reply could not be trusted"
    fake.sign_correctly()
    assert await notifier.send(group_end()) == Delivered(Success())


async def test_root_signed_certificates_under_another_key_are_refused(fake, make_notifier) -> None:
    fake.delegate = False
    fake.sign_wrongly("wrong_key")
    with pytest.raises(TransientNotifyError, match="signature does not verify under the root key"):
        await make_notifier(root_key=fake.root_key_der).send(group_end())


async def test_the_mainnet_root_key_is_the_default(fake, make_notifier) -> None:
    with pytest.raises(TransientNotifyError, match="delegation signature does not verify under the root key"):
        await make_notifier().send(group_end())
    fake.delegate = False
    with pytest.raises(TransientNotifyError, match="signature does not verify under the root key"):
        await make_notifier().send(group_end())


# ---- through the bridge: the outbox keeps it, retries it, counts it ----

async def notification_counts(client: TestClient) -> dict[str, float]:
    async with client.get("/metrics") as resp:
        text = await resp.text()
    prefix = 'videobridge_notifications_total{kind="start",outcome="'
    return {line[len(prefix):].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(prefix)}


@pytest.mark.parametrize("fault", ["wrong_root", "junk_signature", "stale_time", "uncovered"])
async def test_the_outbox_retries_until_the_certificate_verifies(make_bridge, fake, signer, fault: str) -> None:
    fake.sign_wrongly(fault)
    client = await make_bridge(notifier=None, notify_retry=FAST_RETRY, ic_url=fake.url,
                               oc_identity=OPERATOR_PEM, ic_root_key=fake.root_key_der)
    with structlog.testing.capture_logs() as logs:
        status, body = await get_token(client, start_token(signer))
        assert status == 200
        await eventually(lambda: len(fake.calls) >= 3, timeout=10.0)
        counts = await notification_counts(client)
        assert counts["retry"] >= 2 and counts["success"] == 0
        assert len(bridge_of(client).store.outbox) == 1, "not delivered: still queued"
        fake.sign_correctly()
        await eventually(lambda: not bridge_of(client).store.outbox, timeout=10.0)
    counts = await notification_counts(client)
    assert counts["success"] == 1
    assert {c.args["message_id"] for c in fake.calls} == {int(body["messageId"])}, "same message id every time"
    retries = [e for e in logs if e["event"] == "notification_retry"]
    assert retries and all(e["error"].startswith("certificate verification failed: ") for e in retries)


async def test_without_a_root_key_setting_the_bridge_trusts_only_mainnet(make_bridge, fake, signer) -> None:
    with structlog.testing.capture_logs() as logs:
        client = await make_bridge(notifier=None, notify_retry=FAST_RETRY, ic_url=fake.url,
                                   oc_identity=OPERATOR_PEM)
        await get_token(client, start_token(signer))
        await eventually(lambda: len(fake.calls) >= 2, timeout=10.0)
    (warning,) = [e for e in logs if e["event"] == "ic_root_key_mainnet"]
    assert warning["log_level"] == "warning" and "VIDEOBRIDGE_IC_ROOT_KEY" in warning["reason"]
    assert [e["ic_root_key"] for e in logs if e["event"] == "ic_identity"] == ["mainnet"]
    counts = await notification_counts(client)
    assert counts["retry"] >= 1 and counts["success"] == 0
    assert len(bridge_of(client).store.outbox) == 1


@pytest.mark.parametrize(("ic_url", "warned"), [("https://icp-api.io", False), ("https://ic0.app", False),
                                                ("https://a.icp0.io", False), ("http://127.0.0.1:4943", True)])
def test_a_non_mainnet_url_without_a_root_key_is_warned_about(ic_url: str, warned: bool) -> None:
    from videobridge.config import Settings
    from videobridge.wiring import build_notifier

    with structlog.testing.capture_logs() as logs:
        build_notifier(Settings(ic_url=ic_url, oc_identity=OPERATOR_PEM))
        build_notifier(Settings(ic_url=ic_url, oc_identity=OPERATOR_PEM, ic_root_key=FakeIC().root_key_der))
    assert [e["ic_url"] for e in logs if e["event"] == "ic_root_key_mainnet"] == ([ic_url] if warned else [])
