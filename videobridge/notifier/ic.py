"""Deliver one Notification as a signed IC update call, and classify what came back.

Outcomes (what the outbox does with them):
  Delivered(reply)  the canister answered (Success or Error): settled.
  Rejected(...)     the IC refused or the canister trapped (e.g. we are not an operator, or the
                    canister does not exist: IC0301, or the boundary node's HTTP 400
                    canister_not_found): settled, retrying cannot help. code 0 means we refused it
                    locally and sent nothing.
  Skipped()         notifications are switched off (LoggingNotifier): settled.
  TransientNotifyError (raised)  transport error, timeout, garbled answer: retry later, with
                    the same message_id.

icp-py-core details that shape this module (icp-py-core 2.3.1, reference/ic.md §1.3-1.4):
  * `verify_certificate` defaults to True and needs `blst`, which is not on PyPI: the call would
    execute and *then* raise. We pass False and verify every certificate ourselves where the
    answers arrive, in the Client (`certificate.py`: BLS signature under the root key, subnet
    delegation, canister range, time, as agent-js does). A reply that fails is a
    TransientNotifyError(reason="certificate"): not delivered, retried like a transport error.
  * Each HTTP request defaults to a hidden 360 s timeout that Agent cannot override, and the
    async methods open a fresh AsyncClient per request. `_client_class()` subclasses Client to
    give every request our timeout and to reuse one pooled AsyncClient that close() shuts.
  * `update_async` under `asyncio.wait_for(deadline)` cancels cleanly.
icp-py-core is imported lazily so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeAlias
from urllib.parse import urlsplit

import structlog

from videobridge.models import Notification
from videobridge.notifier.candid import (
    CandidArgError,
    CandidReplyError,
    Reply,
    encode_args,
    reply_from_value,
    unit_result_type,
)
from videobridge.notifier.certificate import MAINNET_ROOT_KEY, CertificateError, CertificateVerifier
from videobridge.principal import is_principal, principal_to_bytes

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Delivered:
    reply: Reply


@dataclass(frozen=True, slots=True)
class Rejected:
    code: int
    message: str
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    pass


Outcome: TypeAlias = Delivered | Rejected | Skipped

LOCAL_REJECT = 0  # Rejected.code for notifications refused before sending


class TransientNotifyError(Exception):
    """The call may or may not have reached the IC; try again later (same message_id).

    `reason` is "transport" (HTTP error, connection refused), "timeout", "protocol"
    (an answer we could not make sense of) or "certificate" (an answer we could not verify).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CertificateCheck(Protocol):
    def verify(self, certificate: bytes, canister_id: bytes) -> None:
        """Raise CertificateError unless the CBOR certificate proves an answer from canister_id."""


class Notifier(Protocol):
    async def send(self, n: Notification) -> Outcome: ...

    async def close(self) -> None: ...


class LoggingNotifier:
    """Stand-in when IC_URL or OC_IDENTITY is not configured: log, and settle as Skipped."""

    async def send(self, n: Notification) -> Outcome:
        log.info("ic_notification_skipped", method=n.method, canister_kind=n.canister_kind.value,
                 canister_id=n.canister_id, message_id=str(n.message_id), seq=n.seq,
                 reason="IC notifications are not configured")
        return Skipped()

    async def close(self) -> None:
        return None


@cache
def _client_class() -> type:
    import httpx
    from icp_agent.client import Client
    from icp_core.errors import TransportError

    class PooledTimeoutClient(Client):  # type: ignore[misc]
        """Client with a real per-request timeout, one pooled AsyncClient (closed by aclose), and
        every certificate in a /call or read_state answer verified before icp-py-core reads it."""

        def __init__(self, url: str, *, request_timeout: float, certificates: CertificateCheck) -> None:
            super().__init__(url)
            self.timeout = httpx.Timeout(request_timeout)
            self.certificates = certificates
            self._async: httpx.AsyncClient | None = None

        async def _post(self, path: str, data: bytes) -> httpx.Response:
            if self._async is None:
                self._async = httpx.AsyncClient(http2=True, timeout=self.timeout)
            endpoint = f"{self.url}{path}"
            try:
                resp = await self._async.post(endpoint, content=data,
                                              headers={"Content-Type": "application/cbor"})
                resp.raise_for_status()
                return resp
            except httpx.HTTPError as exc:
                raise TransportError(endpoint, exc) from exc

        async def call_async(self, canister_id: str, req_id: bytes, data: bytes, **_: Any) -> Any:
            resp = await self._post(f"/api/v4/canister/{canister_id}/call", data)
            body = _cbor_map(resp.content)
            if body is not None and body.get("status") == "replied":
                self._verify(body.get("certificate"), canister_id)
            return resp

        async def read_state_async(self, canister_id: str, data: bytes, **_: Any) -> bytes:
            content = (await self._post(f"/api/v3/canister/{canister_id}/read_state", data)).content
            body = _cbor_map(content)
            if body is not None:  # anything else fails in icp-py-core as a protocol error
                self._verify(body.get("certificate"), canister_id)
            return content

        def _verify(self, certificate: Any, canister_id: str) -> None:
            if not isinstance(certificate, bytes):
                raise CertificateError("answer carries no certificate")
            self.certificates.verify(certificate, principal_to_bytes(canister_id))

        async def query_async(self, canister_id: str, data: bytes, **_: Any) -> bytes:
            return (await self._post(f"/api/v3/canister/{canister_id}/query", data)).content

        async def read_state_subnet_async(self, subnet_id: str, data: bytes, **_: Any) -> bytes:
            return (await self._post(f"/api/v3/subnet/{subnet_id}/read_state", data)).content

        # The sync methods are unused here, but must not fall back to 360 s either.
        def call(self, canister_id: str, data: bytes, **_: Any) -> Any:
            return super().call(canister_id, data, timeout=self.timeout)

        def read_state(self, canister_id: str, data: bytes, **_: Any) -> bytes:
            return bytes(super().read_state(canister_id, data, timeout=self.timeout))

        def query(self, canister_id: str, data: bytes, **_: Any) -> bytes:
            return bytes(super().query(canister_id, data, timeout=self.timeout))

        def read_state_subnet(self, subnet_id: str, data: bytes, **_: Any) -> bytes:
            return bytes(super().read_state_subnet(subnet_id, data, timeout=self.timeout))

        def status(self, **_: Any) -> bytes:
            return bytes(super().status(timeout=self.timeout))

        async def aclose(self) -> None:
            client, self._async = self._async, None
            if client is not None:
                await client.aclose()

    return PooledTimeoutClient


def _cbor_map(content: bytes) -> Any:
    import cbor2

    try:
        body = cbor2.loads(content)
    except Exception:
        return None
    if isinstance(body, cbor2.CBORTag) and body.tag == 55799:
        body = body.value
    return body if isinstance(body, Mapping) else None


def _check_url(ic_url: str) -> str:
    parts = urlsplit(ic_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("IC URL must be an http(s) URL such as https://icp-api.io")
    return ic_url.rstrip("/")


class IcNotifier:
    """Signs and sends notifications with icp-py-core.

    Use one instance per event loop: its connection pool is created on the first send and bound
    to that loop; close() releases it. Replies are trusted only with a certificate that verifies
    under `root_key` (DER; mainnet's by default), or by `certificates` when given.
    """

    def __init__(self, *, ic_url: str, identity: Any, request_timeout: float = 10.0,
                 deadline: float = 30.0, root_key: bytes = MAINNET_ROOT_KEY,
                 certificates: CertificateCheck | None = None) -> None:
        from icp_agent.agent import Agent

        if request_timeout <= 0 or deadline <= 0:
            raise ValueError("request_timeout and deadline must be positive")
        self._deadline = deadline
        checker = certificates if certificates is not None else CertificateVerifier(root_key)
        self._client = _client_class()(_check_url(ic_url), request_timeout=request_timeout,
                                       certificates=checker)
        self._agent = Agent(identity, self._client)
        self.principal: str = identity.sender().to_str()

    async def send(self, n: Notification) -> Outcome:
        from icp_core.errors import ICError, ReplicaReject, TimeoutWaitingForResponse, TransportError

        if not is_principal(n.canister_id):
            return Rejected(LOCAL_REJECT, "invalid canister id")
        try:
            arg = encode_args(n.canister_kind, n.method, n.args)
        except CandidArgError as exc:
            return Rejected(LOCAL_REJECT, f"invalid arguments: {exc}")
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(
                self._agent.update_async(
                    n.canister_id, n.method, arg, return_type=[unit_result_type()],
                    verify_certificate=False, timeout=self._deadline,
                ),
                self._deadline,
            )
        except ReplicaReject as exc:
            return Rejected(int(exc.reject_code or 0), str(exc.reject_message), exc.error_code)
        except CertificateError as exc:
            # Not proof the canister answered (forged, misrouted, stale): as unsure as a lost reply.
            raise TransientNotifyError(f"certificate verification failed: {exc}"[:300],
                                       reason="certificate") from exc
        except (TimeoutError, TimeoutWaitingForResponse):
            raise TransientNotifyError(
                f"no answer within {time.monotonic() - started:.1f}s", reason="timeout") from None
        except TransportError as exc:
            if (unrouted := _canister_not_found(exc.__cause__ or exc)) is not None:
                return unrouted
            reason, message = _describe_transport(exc.__cause__ or exc)
            raise TransientNotifyError(message, reason=reason) from exc
        except ConnectionRefusedError as exc:
            raise TransientNotifyError("cannot connect to the IC (connection refused)", reason="unsent") from exc
        except OSError as exc:
            raise TransientNotifyError(f"network error: {type(exc).__name__}", reason="transport") from exc
        except (ICError, RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            # Unknown status, non-CBOR body, undecodable certificate or reply.
            raise TransientNotifyError(f"unexpected answer: {type(exc).__name__}: {exc}"[:300],
                                       reason="protocol") from exc
        try:
            return Delivered(reply_from_value(result[0]["value"]))
        except (CandidReplyError, LookupError, TypeError) as exc:
            raise TransientNotifyError(f"unexpected reply: {exc}"[:300], reason="protocol") from exc

    async def close(self) -> None:
        await self._client.aclose()


def _canister_not_found(exc: BaseException) -> Rejected | None:
    """The boundary node's answer for a canister id no subnet hosts: settled, retrying cannot help.

    (A canister id inside a subnet's range that does not exist is the replica's own reject,
    code 3 / IC0301, which arrives as ReplicaReject.)
    """
    import httpx

    if not isinstance(exc, httpx.HTTPStatusError) or exc.response.status_code != 400:
        return None
    response = exc.response
    if response.headers.get("x-ic-error-cause") != "canister_not_found" and not response.text.startswith(
            "error: canister_not_found"):
        return None
    details = response.text.partition("details:")[2].strip() or "the canister does not exist"
    return Rejected(3, f"canister_not_found: {details}"[:300], "canister_not_found")


def _describe_transport(exc: BaseException) -> tuple[str, str]:
    import httpx

    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        # no connection, so the call surely never reached the IC
        return "unsent", f"cannot connect to the IC ({type(exc).__name__})"
    if isinstance(exc, httpx.HTTPStatusError):
        return "transport", f"HTTP {exc.response.status_code} from the IC"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", f"HTTP request timed out ({type(exc).__name__})"
    return "transport", f"transport error: {type(exc).__name__}: {exc}"[:300]
