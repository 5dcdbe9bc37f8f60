"""DailyClient against the emulator over real HTTP, plus retry edge cases with aioresponses."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import daily_fixtures
import pytest
import structlog
from aioresponses import aioresponses
from daily_fixtures import API_KEY, FAST_RETRIES, Receiver, compat_aioresponses, hour_from_now

from videobridge.daily import (
    DailyClient,
    DailyError,
    DailyNotFound,
    DailyRateLimited,
    DailyRejected,
    DailyRoomExists,
    DailyUnavailable,
    Participant,
)
from videobridge.emulator import DailyEmulator

# Shared fixtures (module-level names so pytest finds them; they shadow conftest.py's).
client = daily_fixtures.client
emulator = daily_fixtures.emulator
receiver = daily_fixtures.receiver

BASE = "http://daily.test/v1"
ROOM_URL = BASE + "/rooms/abc"


class Recorder:
    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []
        self.retries: list[tuple[str, str]] = []

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.done.append((endpoint, outcome))

    def retried(self, endpoint: str, reason: str) -> None:
        self.retries.append((endpoint, reason))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def mocked(recorder: Recorder) -> AsyncIterator[tuple[aioresponses, DailyClient]]:
    with compat_aioresponses() as m:
        async with DailyClient(
            api_key=API_KEY, base_url=BASE, deadline=1.0, request_timeout=0.5,
            retry_policy=FAST_RETRIES, observer=recorder,
        ) as c:  # fmt: skip
            yield m, c


def _room_json(name: str = "abc") -> dict[str, object]:
    return {"id": "id-1", "name": name, "privacy": "private", "url": f"https://x.daily.co/{name}",
            "created_at": "2024-01-01T00:00:00.000Z", "config": {"exp": 123}}  # fmt: skip


# -- against the emulator ------------------------------------------------------------------------


async def test_domain(client: DailyClient, emulator: DailyEmulator) -> None:
    domain = await client.get_domain()
    assert domain.domain_name == "openchat"
    assert domain.domain_id == emulator.domain_id


async def test_create_get_update_room(client: DailyClient, emulator: DailyEmulator) -> None:
    exp = hour_from_now()
    room = await client.create_room("abc", properties={"exp": exp, "max_participants": 20, "enable_chat": True})
    assert (room.name, room.privacy, room.exp) == ("abc", "private", exp)
    assert room.url == "https://openchat.daily.co/abc"
    assert room.config["max_participants"] == 20
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", room.created_at)
    assert await client.get_room("abc") == room

    updated = await client.update_room("abc", properties={"exp": exp + 60, "enable_chat": None}, privacy="public")
    assert updated.exp == exp + 60 and updated.privacy == "public"
    assert "enable_chat" not in updated.config  # null resets to the default
    assert emulator.room("abc") is not None and emulator.room("abc")["config"]["exp"] == exp + 60  # type: ignore[index]


async def test_existing_room_name_raises_room_exists(client: DailyClient, emulator: DailyEmulator) -> None:
    made = await client.create_room("dup", properties={"exp": hour_from_now()})
    with pytest.raises(DailyRoomExists) as caught:
        await client.create_room("dup", properties={"exp": hour_from_now()})
    err = caught.value
    assert (err.status, err.error, err.endpoint) == (400, "invalid-request-error", "POST /rooms")
    # the emulator words the 400 unlike any guess; the lookup is what tells "taken" apart
    assert "already exists" not in (err.info or "") and err.room == made
    assert emulator.requests["GET /rooms/:name"] == 1


async def test_bad_room_name_is_rejected_not_exists(client: DailyClient, emulator: DailyEmulator) -> None:
    with pytest.raises(DailyRejected) as caught:
        await client.create_room("no spaces!", properties={})
    assert caught.value.status == 400 and not isinstance(caught.value, DailyRoomExists)
    with pytest.raises(DailyRejected) as caught:
        await client.create_room("free", properties={"enable_mesh_sfuu": True})  # a typo
    assert "unknown room property" in (caught.value.info or "") and not isinstance(caught.value, DailyRoomExists)
    assert emulator.requests["GET /rooms/:name"] == 2, "each 400 was checked with a lookup, which found nothing"


async def test_400_from_post_rooms_is_checked_whatever_its_text(mocked: tuple[aioresponses, DailyClient]) -> None:
    m, c = mocked
    m.post(BASE + "/rooms", status=400, payload={"error": "invalid-request-error", "info": "Name taken, sorry"})
    m.get(BASE + "/rooms/r1", payload={"name": "r1", "id": "x", "privacy": "private", "config": {"exp": 5}})
    with pytest.raises(DailyRoomExists) as caught:
        await c.create_room("r1", properties={})
    assert caught.value.room.config == {"exp": 5}
    m.post(BASE + "/rooms", status=400, payload={"error": "invalid-request-error", "info": "a room named r2 already exists"})
    m.get(BASE + "/rooms/r2", status=404, payload={"error": "not-found", "info": "room r2 was not found"})
    with pytest.raises(DailyRejected) as rejected:
        await c.create_room("r2", properties={})
    assert not isinstance(rejected.value, DailyRoomExists) and rejected.value.endpoint == "POST /rooms"


async def test_get_missing_room_is_not_found(client: DailyClient, emulator: DailyEmulator) -> None:
    with pytest.raises(DailyNotFound) as caught:
        await client.get_room("a b/../c")  # quoted into one path segment
    assert caught.value.endpoint == "GET /rooms/:name"
    assert emulator.requests["GET /rooms/:name"] == 1


async def test_delete_room_is_idempotent(client: DailyClient) -> None:
    await client.create_room("gone", properties={"exp": hour_from_now()})
    assert await client.delete_room("gone") is True
    assert await client.delete_room("gone") is False
    with pytest.raises(DailyNotFound):
        await client.get_room("gone")


async def test_list_rooms_pages_through_everything(client: DailyClient, emulator: DailyEmulator) -> None:
    names = [f"room-{i:03d}" for i in range(105)]
    await asyncio.gather(*(client.create_room(n, properties={"exp": hour_from_now()}) for n in names))
    listed = [r.name async for r in client.list_rooms()]
    assert sorted(listed) == names and len(set(listed)) == 105
    assert emulator.requests["GET /rooms"] == 3  # 100 + 5 + the empty page
    small = [r.name async for r in client.list_rooms(page_size=40)]
    assert small == listed  # same newest-first order whatever the page size


async def test_list_rooms_newest_first(client: DailyClient) -> None:
    for name in ("first", "second", "third"):
        await client.create_room(name, properties={})
    assert [r.name async for r in client.list_rooms(page_size=2)] == ["third", "second", "first"]


async def test_presence_after_join(client: DailyClient, emulator: DailyEmulator) -> None:
    assert await client.presence() == {}
    await client.create_room("live", privacy="public", properties={})
    await client.create_room("quiet", properties={})
    token = await client.create_meeting_token({"room_name": "live", "user_id": "u-1", "user_name": "Ann"})
    session = emulator.join("live", token)
    emulator.join("live", None)  # public room: token-less joins are allowed and have no user id

    everyone = await client.presence()
    assert list(everyone) == ["live"]
    people = {p.id: p for p in everyone["live"]}
    assert people[session].user_id == "u-1" and people[session].user_name == "Ann"
    assert all(p.room == "live" and p.join_time for p in people.values())
    assert {p.user_id for p in people.values()} == {"u-1", None}

    assert len(await client.room_presence("live")) == 2
    assert await client.room_presence("quiet") == []
    with pytest.raises(DailyNotFound):
        await client.room_presence("nowhere")


async def test_retry_through_real_http(client: DailyClient, emulator: DailyEmulator) -> None:
    emulator.fail_next("POST /rooms", 503)
    emulator.fail_next("GET /rooms/:name", 429, retry_after=0.1)
    await client.create_room("flaky", properties={})
    started = time.monotonic()
    assert (await client.get_room("flaky")).name == "flaky"
    assert time.monotonic() - started >= 0.1
    assert emulator.requests["POST /rooms"] == 2 and emulator.requests["GET /rooms/:name"] == 2


async def test_hanging_attempt_times_out_and_is_retried(emulator: DailyEmulator) -> None:
    emulator.hang_next("GET /", seconds=5)
    assert emulator.base_url
    async with DailyClient(api_key=API_KEY, base_url=emulator.base_url, request_timeout=0.2, deadline=2.0,
                           retry_policy=FAST_RETRIES) as c:  # fmt: skip
        started = time.monotonic()
        assert (await c.get_domain()).domain_name == "openchat"
    assert 0.2 <= time.monotonic() - started < 1.5
    assert emulator.requests["GET /"] == 2


async def test_wrong_key_is_rejected_and_key_never_leaks(emulator: DailyEmulator) -> None:
    assert emulator.base_url
    secret = "not-the-key-" + "s" * 40
    async with DailyClient(api_key=secret, base_url=emulator.base_url) as c:
        with pytest.raises(DailyRejected) as caught:
            await c.get_domain()
        assert caught.value.status == 401 and caught.value.error == "authentication-error"
        assert secret not in str(caught.value) and secret not in repr(caught.value) and secret not in repr(c)


async def test_webhook_crud(client: DailyClient, receiver: Receiver) -> None:
    hook = await client.create_webhook(url=receiver.url, hmac="c2VjcmV0", event_types=["meeting.ended"])
    assert (hook.state, hook.failed_count, hook.retry_type) == ("ACTIVE", 0, "exponential")
    assert hook.event_types == ("meeting.ended",) and hook.hmac == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(hook)
    assert await client.list_webhooks() == [hook]
    changed = await client.update_webhook(hook.uuid, event_types=["meeting.started"], retry_type="circuit-breaker")
    assert changed.event_types == ("meeting.started",) and changed.retry_type == "circuit-breaker"
    assert (await client.get_webhook(hook.uuid)).uuid == hook.uuid
    await client.delete_webhook(hook.uuid)
    assert await client.list_webhooks() == []
    with pytest.raises(DailyNotFound):
        await client.delete_webhook(hook.uuid)


# -- retry policy (aioresponses) -----------------------------------------------------------------


async def test_503_then_200_succeeds(mocked: tuple[aioresponses, DailyClient], recorder: Recorder) -> None:
    m, c = mocked
    m.get(ROOM_URL, status=503, payload={"error": "server-error", "info": "busy"})
    m.get(ROOM_URL, payload=_room_json())
    assert (await c.get_room("abc")).exp == 123
    assert recorder.retries == [("GET /rooms/:name", "5xx")]
    assert recorder.done == [("GET /rooms/:name", "ok")]


async def test_429_retry_after_is_honoured(mocked: tuple[aioresponses, DailyClient], recorder: Recorder) -> None:
    m, c = mocked
    m.get(ROOM_URL, status=429, headers={"Retry-After": "0.3"}, payload={"error": "rate-limit-error"})
    m.get(ROOM_URL, payload=_room_json())
    started = time.monotonic()
    await c.get_room("abc")
    assert time.monotonic() - started >= 0.3  # our own backoff would be <= 0.05 s
    assert recorder.retries == [("GET /rooms/:name", "429")]


async def test_429_forever_gives_up_at_the_deadline(mocked: tuple[aioresponses, DailyClient], recorder: Recorder) -> None:
    m, c = mocked
    m.get(ROOM_URL, status=429, payload={"error": "rate-limit-error", "info": "slow down"}, repeat=True)
    started = time.monotonic()
    with pytest.raises(DailyRateLimited) as caught:
        await c.get_room("abc", deadline=0.4)
    assert time.monotonic() - started < 3.0  # the promised deadline, generous for a loaded machine
    err = caught.value
    assert (err.status, err.error, err.endpoint) == (429, "rate-limit-error", "GET /rooms/:name")
    assert err.attempts > 2 and f"after {err.attempts} attempts" in str(err)
    assert recorder.done == [("GET /rooms/:name", "rate_limited")]


async def test_retry_after_beyond_deadline_gives_up_at_once(mocked: tuple[aioresponses, DailyClient]) -> None:
    m, c = mocked
    m.get(ROOM_URL, status=429, headers={"Retry-After": "30"}, repeat=True)
    started = time.monotonic()
    with pytest.raises(DailyRateLimited):
        await c.get_room("abc")
    assert time.monotonic() - started < 5.0  # generous: waiting as told would take 30 s


@pytest.mark.parametrize(
    ("status", "body", "expected", "outcome"),
    [
        (404, {"error": "not-found", "info": "room abc was not found"}, DailyNotFound, "not_found"),
        (401, {"error": "authentication-error", "info": "bad key"}, DailyRejected, "rejected"),
        (403, {"error": "forbidden-error", "info": "no"}, DailyRejected, "rejected"),
        (400, {"error": "invalid-request-error", "info": "bad exp"}, DailyRejected, "rejected"),
    ],
)
async def test_other_4xx_are_not_retried(
    mocked: tuple[aioresponses, DailyClient],
    recorder: Recorder,
    status: int,
    body: dict[str, str],
    expected: type[DailyError],
    outcome: str,
) -> None:
    m, c = mocked
    m.get(ROOM_URL, status=status, payload=body, repeat=True)
    with pytest.raises(expected) as caught:
        await c.get_room("abc")
    assert caught.value.status == status and caught.value.info == body["info"]
    assert caught.value.attempts == 1
    assert sum(len(calls) for calls in m.requests.values()) == 1
    assert recorder.retries == [] and recorder.done == [("GET /rooms/:name", outcome)]


async def test_timeouts_are_retried_then_unavailable(mocked: tuple[aioresponses, DailyClient], recorder: Recorder) -> None:
    m, c = mocked
    m.get(ROOM_URL, exception=TimeoutError(), repeat=True)
    with pytest.raises(DailyUnavailable) as caught:
        await c.get_room("abc", deadline=0.3)
    assert caught.value.status is None and caught.value.attempts > 1
    assert set(recorder.retries) == {("GET /rooms/:name", "timeout")}
    assert recorder.done == [("GET /rooms/:name", "unavailable")]


async def test_transport_errors_are_retried(mocked: tuple[aioresponses, DailyClient], recorder: Recorder) -> None:
    m, c = mocked
    m.get(ROOM_URL, exception=aiohttp.ClientConnectionError("refused"))
    m.get(ROOM_URL, payload=_room_json())
    assert (await c.get_room("abc")).name == "abc"
    assert recorder.retries == [("GET /rooms/:name", "transport")]


async def test_5xx_forever_is_unavailable(mocked: tuple[aioresponses, DailyClient]) -> None:
    m, c = mocked
    m.post(BASE + "/rooms", status=500, body="<html>oops</html>", repeat=True)
    with pytest.raises(DailyUnavailable) as caught:
        await c.create_room("abc", properties={}, deadline=0.2)
    assert caught.value.status == 500 and caught.value.info == "<html>oops</html>"


async def test_presence_shapes(mocked: tuple[aioresponses, DailyClient]) -> None:
    m, c = mocked
    person = {"room": "r", "id": "p1", "userId": None, "userName": "Bo", "joinTime": "2024-01-01T00:00:00.000Z",
              "duration": 12}  # fmt: skip
    m.get(BASE + "/presence", payload={"r": [person], "empty": []})
    m.get(BASE + "/presence", payload={})
    assert await c.presence() == {"r": [Participant.from_json(person)]}
    assert await c.presence() == {}


async def test_webhook_parsing_is_defensive(mocked: tuple[aioresponses, DailyClient]) -> None:
    m, c = mocked
    m.get(BASE + "/webhooks", payload=[{"uuid": "u", "url": "https://x", "state": 0, "failedCount": 3,
                                        "eventTypes": ["meeting.ended"], "lastMomentPushed": 1700000000}])  # fmt: skip
    [hook] = await c.list_webhooks()
    assert hook.state == "FAILED" and hook.failed_count == 3 and hook.retry_type == "circuit-breaker"
    assert hook.last_moment_pushed == "2023-11-14T22:13:20Z" and hook.hmac is None


async def test_secrets_never_in_errors_or_logs(recorder: Recorder) -> None:
    with compat_aioresponses() as m, structlog.testing.capture_logs() as logs:
        async with DailyClient(api_key=API_KEY, base_url=BASE, deadline=1.0, retry_policy=FAST_RETRIES) as c:
            m.get(BASE + "/", status=502, body=f"upstream said Bearer {API_KEY}")
            m.get(BASE + "/", status=401, body=f"bad Authorization: Bearer {API_KEY}")
            with pytest.raises(DailyRejected) as caught:
                await c.get_domain()
    assert logs and logs[0]["event"] == "daily_retry"
    for text in (str(caught.value), repr(caught.value), caught.value.info or "", repr(logs)):
        assert API_KEY not in text
    assert "[redacted]" in (caught.value.info or "")


async def test_sends_bearer_key_and_json(mocked: tuple[aioresponses, DailyClient]) -> None:
    m, c = mocked
    m.post(BASE + "/meeting-tokens", payload={"token": "t.o.k"})
    assert await c.create_meeting_token({"room_name": "r"}) == "t.o.k"
    [(key, calls)] = list(m.requests.items())
    assert key[0] == "POST"
    assert calls[0].kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert calls[0].kwargs["json"] == {"properties": {"room_name": "r"}}


# -- client-side rate limits ---------------------------------------------------------------------


async def test_delete_limiter_spaces_requests(emulator: DailyEmulator) -> None:
    assert emulator.base_url
    async with DailyClient(api_key=API_KEY, base_url=emulator.base_url, delete_rate_per_second=10.0,
                           rate_per_second=100.0) as c:
        started = time.monotonic()
        results = await asyncio.gather(*(c.delete_room(f"r{i}") for i in range(20)))
        elapsed = time.monotonic() - started
        assert results == [False] * 20
        assert elapsed >= 0.9  # a burst of 10, then one every 0.1 s
        started = time.monotonic()
        await asyncio.gather(*(c.presence() for _ in range(15)))  # other calls use the general budget only
        assert time.monotonic() - started < 1.2  # on the spent delete budget they would take 1.5 s


async def test_global_limiter_spaces_requests(emulator: DailyEmulator) -> None:
    assert emulator.base_url
    async with DailyClient(api_key=API_KEY, base_url=emulator.base_url, rate_per_second=20.0) as c:
        started = time.monotonic()
        await asyncio.gather(*(c.presence() for _ in range(30)))
        assert time.monotonic() - started >= 0.45  # burst of 20, then 10 more at 20/s


async def test_limiter_wait_counts_against_the_deadline(emulator: DailyEmulator) -> None:
    assert emulator.base_url
    async with DailyClient(api_key=API_KEY, base_url=emulator.base_url, delete_rate_per_second=1.0) as c:
        assert await c.delete_room("x") is False
        with pytest.raises(DailyRateLimited) as caught:
            await c.delete_room("y", deadline=0.2)
        assert caught.value.status is None


async def test_own_session_is_left_open(emulator: DailyEmulator) -> None:
    assert emulator.base_url
    async with aiohttp.ClientSession() as session:
        async with DailyClient(api_key=API_KEY, base_url=emulator.base_url, session=session) as c:
            await c.get_domain()
        assert not session.closed


async def test_unexpected_answer_shape_is_unavailable(mocked: tuple[aioresponses, DailyClient], recorder: Recorder) -> None:
    m, c = mocked
    m.get(BASE + "/presence", payload=["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(DailyUnavailable, match="unexpected answer shape"):
        await c.presence()
    assert recorder.done == [("GET /presence", "unavailable")]


async def test_eject_removes_sessions_and_ignores_absent_ones(client: DailyClient, emulator: DailyEmulator) -> None:
    await client.create_room("live", privacy="public", properties={})
    first, second = emulator.join("live", None), emulator.join("live", None)
    assert await client.eject("live", [first, "6f1c2a52-0000-4000-8000-000000000000"]) == [first]
    assert [p.id for p in await client.room_presence("live")] == [second]
    assert await client.eject("live", [first]) == []  # already gone: still a success
    assert emulator.requests["POST /rooms/:name/eject"] == 2
    with pytest.raises(DailyNotFound):
        await client.eject("nowhere", [second])


async def test_eject_sends_ids_and_reads_ejected_ids(mocked: tuple[aioresponses, DailyClient]) -> None:
    m, c = mocked
    m.post(ROOM_URL + "/eject", payload={"ejectedIds": ["s-1"]})
    m.post(ROOM_URL + "/eject", payload={})
    m.post(ROOM_URL + "/eject", status=503, repeat=True)
    assert await c.eject("abc", ["s-1"]) == ["s-1"]
    [(_, calls)] = [(k, v) for k, v in m.requests.items() if k[0] == "POST"]
    assert calls[0].kwargs["json"] == {"ids": ["s-1"]}
    assert await c.eject("abc", ["s-2"]) == []
    with pytest.raises(DailyUnavailable):
        await c.eject("abc", ["s-3"], deadline=0.2)
