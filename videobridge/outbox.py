"""Durable delivery of OpenChat notifications (IC update calls).

Notifications are written to the state file in the same write as the call change that caused
them, then delivered by one worker task: oldest first per call (message id), transport errors
and timeouts retried with capped exponential backoff and jitter, any IC reply settles them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from videobridge.background import BackgroundTasks
from videobridge.backoff import Backoff
from videobridge.errors import StateError
from videobridge.events import EventSink
from videobridge.models import Call, Notification, NotificationKind
from videobridge.notifier.candid import Success
from videobridge.notifier.ic import Delivered, Notifier, Outcome, Rejected, Skipped, TransientNotifyError
from videobridge.notifier.routing import plan_decline, plan_end, plan_start, wire_form
from videobridge.state.base import Change, Store

log = structlog.get_logger("videobridge.outbox")


class OutboxObserver(Protocol):
    def notification_done(self, kind: str, outcome: str) -> None: ...


SHARED_POLL = 0.5  # seconds: how soon the leader sees what another instance queued
RetryPolicy = Backoff  # the outbox's name for it (settings and tests pass one in)
DEFAULT_RETRY = Backoff()


class Settled(enum.Enum):
    """How the IC settled a notification: the `outcome` metric label and log field."""

    SUCCESS = "success"  # the canister answered Success
    ERROR = "error"  # the canister answered with an OpenChat error
    REJECTED = "rejected"  # the IC (or our own check before sending) refused the call
    SKIPPED = "skipped"  # notifications are not configured: logged, not sent


def outcome_label(outcome: Outcome) -> tuple[Settled, dict[str, Any]]:
    """Map a notifier outcome to its label and log fields."""
    if isinstance(outcome, Delivered):
        if isinstance(outcome.reply, Success):
            return Settled.SUCCESS, {}
        return Settled.ERROR, {"code": outcome.reply.code, "reason": outcome.reply.message}
    if isinstance(outcome, Rejected):
        return Settled.REJECTED, {"code": outcome.code, "reason": outcome.message}
    assert isinstance(outcome, Skipped)
    return Settled.SKIPPED, {}


class Outbox:
    def __init__(self, *, store: Store, notifier: Notifier, clock: Callable[[], float] = time.time,
                 retry: Backoff = DEFAULT_RETRY, concurrency: int = 16,
                 observer: OutboxObserver | None = None, legacy_user_end: bool = False,
                 events: EventSink | None = None) -> None:
        self._store = store
        # VIDEOBRIDGE_LEGACY_USER_END: user-canister ends in the pre-#9401 shape (applied at send)
        self._legacy_user_end = legacy_user_end
        self._notifier = notifier
        self._clock = clock
        self._retry = retry
        self._concurrency = concurrency
        self._observer = observer
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()  # message ids being delivered
        self._attempts: dict[int, int] = {}  # seq -> failed attempts (memory only: restarts retry at once)
        self._not_before: dict[int, float] = {}
        self._deliveries = BackgroundTasks("outbox")
        self._reloaded_at = -SHARED_POLL  # monotonic: the last reload of a shared store's outbox
        # Starts this process queued that have surely not reached the IC (never attempted, or
        # every attempt failed to connect). Only those may be cancelled by an end; a start
        # loaded from disk may have been sent by the previous process.
        self._unsent: set[int] = set()
        # For people watching (GET /room/status): how deliveries have gone lately.
        self._events = events
        self.last_delivered_at: float | None = None  # the last notification the IC answered
        self.last_error: tuple[float, str] | None = None  # (when, what) of the last failed attempt
        self.failures = 0  # failed attempts since the last answer from the IC

    # -- planning (called by the call service, inside its per-room lock) -----------------------
    async def plan_start(self, call: Call) -> list[Notification]:
        notes = plan_start(call, first_seq=await self._store.allocate_seq(2), now=self._clock())
        if not self._store.shared:  # on a shared store another instance (the leader) delivers it
            self._unsent.update(n.seq for n in notes)
        return notes

    async def plan_end(self, call: Call) -> Change:
        """End notifications for a call; if its start never got out, cancel both instead.

        Declines queued behind that start are cancelled with it: OpenChat never heard of the call.
        """
        pending_start = [n.seq for n in self._store.outbox.values()
                         if n.message_id == call.message_id and n.kind is NotificationKind.START]
        if pending_start and all(seq in self._unsent for seq in pending_start):
            # delivery is in seq order per call, so nothing queued behind the start has been sent
            declines = [n.seq for n in self._store.outbox.values()
                        if n.message_id == call.message_id and n.kind is NotificationKind.DECLINED]
            for _ in pending_start:
                self._count("start", "cancelled")
            for _ in declines:
                self._count("declined", "cancelled")
            log.info("notification_cancelled", room=call.room_name, message_id=str(call.message_id),
                     declines=len(declines), reason="call ended before its start reached OpenChat")
            self._unsent.difference_update(pending_start)
            return Change(settle_notifications=pending_start + declines)
        notes = plan_end(call, first_seq=await self._store.allocate_seq(2), now=self._clock())
        return Change(add_notifications=notes)

    async def plan_decline(self, call: Call, *, user_id: str, local_user_index: str) -> Change:
        """A declined ring in a group or channel: queued behind the call's start, never cancels it."""
        notes = plan_decline(call, user_id=user_id, local_user_index=local_user_index,
                             first_seq=await self._store.allocate_seq(1), now=self._clock())
        return Change(add_notifications=notes)

    def wake(self) -> None:
        self._wake.set()

    # -- observation -------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._store.outbox)

    def oldest_age(self) -> float:
        oldest = next(iter(self._store.outbox.values()), None)
        return max(0.0, self._clock() - oldest.created_at) if oldest else 0.0

    # -- the worker --------------------------------------------------------------------------
    def _due(self, now: float) -> tuple[list[Notification], float | None]:
        heads: dict[int, Notification] = {}
        for note in self._store.outbox.values():  # ordered by seq
            heads.setdefault(note.message_id, note)
        due: list[Notification] = []
        next_at: float | None = None
        for message_id, note in heads.items():
            if message_id in self._in_flight:
                continue
            at = self._not_before.get(note.seq, 0.0)
            if at <= now:
                due.append(note)
            else:
                next_at = at if next_at is None else min(next_at, at)
        return due, next_at

    async def run(self) -> None:
        await self._reload()  # a new leader: what the store holds now
        if self._store.outbox:
            log.info("outbox_resumed", depth=self.depth)
        try:
            while True:
                self._wake.clear()
                await self._reload()
                due, next_at = self._due(self._clock())
                for note in due[: max(0, self._concurrency - len(self._in_flight))]:
                    self._in_flight.add(note.message_id)
                    # from here on an end may no longer cancel it: decided before the task first runs
                    unsent = note.seq in self._unsent
                    self._unsent.discard(note.seq)
                    self._deliveries.spawn(self._deliver(note, unsent), name=f"notify-{note.seq}")
                timeout = None if next_at is None else max(0.0, next_at - self._clock())
                if self._store.shared:  # other instances queue notifications too: look again soon
                    timeout = SHARED_POLL if timeout is None else min(timeout, SHARED_POLL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            await self._deliveries.aclose()

    async def _reload(self) -> None:
        if self._store.shared and time.monotonic() - self._reloaded_at >= SHARED_POLL:
            self._reloaded_at = time.monotonic()
            with contextlib.suppress(StateError):  # Redis away: deliver what we know, retry next round
                await self._store.refresh(calls=False)

    async def _deliver(self, note: Notification, unsent: bool) -> None:
        # whichever version queued it, send the shape the canisters take now (and the switch asks for)
        with contextlib.suppress(Exception):  # wire_form is total; never let a surprise stall this call
            note = wire_form(note, legacy_user_end=self._legacy_user_end)
        fields = {"room": note.room_name, "message_id": str(note.message_id), "method": note.method,
                  "canister": note.canister_id, "seq": note.seq}
        try:
            try:
                outcome = await self._notifier.send(note)
            except TransientNotifyError as exc:
                if unsent and getattr(exc, "reason", None) == "unsent":
                    self._unsent.add(note.seq)
                attempt = self._attempts.get(note.seq, 0) + 1
                self._attempts[note.seq] = attempt
                delay = self._retry.delay(attempt)
                self._not_before[note.seq] = self._clock() + delay
                self._count(note.kind.value, "retry")
                self.failures += 1
                self.last_error = (self._clock(), str(exc)[:200])
                self._record("notification_retry", note, f"{note.kind.value}, attempt {attempt}: {str(exc)[:80]}")
                log.warning("notification_retry", attempt=attempt, retry_in=round(delay, 2),
                            error=str(exc)[:200], **fields)
                return
            settled, extra = outcome_label(outcome)
            label = settled.value
            await self._store.commit(Change(settle_notifications=[note.seq]))
            self._attempts.pop(note.seq, None)
            self._not_before.pop(note.seq, None)
            self._count(note.kind.value, label)
            self.failures = 0
            self.last_delivered_at = self._clock()
            if settled in (Settled.ERROR, Settled.REJECTED):
                self.last_error = (self._clock(), f"{label}: " + " ".join(str(v) for v in extra.values() if v)[:200])
            self._record("notification_settled", note, f"{note.kind.value}: {label}")
            level = log.info if settled in (Settled.SUCCESS, Settled.SKIPPED) else log.warning
            level("notification_settled", outcome=label, **extra, **fields)
        except StateError as exc:  # delivered, but not recorded: it goes again (at least once)
            delay = self._retry.delay(self._attempts.get(note.seq, 1))
            log.warning("notification_unrecorded", error=str(exc)[:200], retry_in=round(delay, 2), **fields)
            self.last_error = (self._clock(), f"state store: {str(exc)[:180]}")
            self._not_before[note.seq] = self._clock() + delay
        except Exception:
            log.exception("notification_failed", **fields)
            self.last_error = (self._clock(), "internal error (see the log: notification_failed)")
            self._not_before[note.seq] = self._clock() + self._retry.delay(self._attempts.get(note.seq, 1))
        finally:
            self._in_flight.discard(note.message_id)
            self._wake.set()

    def _record(self, event: str, note: Notification, detail: str) -> None:
        if self._events is not None:
            self._events.record(event, note.room_name, detail)

    def _count(self, kind: str, outcome: str) -> None:
        if self._observer is not None:
            self._observer.notification_done(kind, outcome)
