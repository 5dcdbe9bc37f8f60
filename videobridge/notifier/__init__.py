"""OpenChat notifications: routing (who to tell), Candid, the IC identity and the IC notifier.

Importing this package is cheap: icp-py-core (agent, Candid, identity) is only imported when
an `IcNotifier` is built, `load_identity` is called, or arguments are encoded / replies decoded.
"""

from __future__ import annotations

from videobridge.notifier.candid import (
    DECLINED_METHOD,
    END_METHOD,
    START_METHOD,
    CandidArgError,
    CandidReplyError,
    Error,
    Reply,
    Success,
    decode_reply,
    encode_args,
)
from videobridge.notifier.certificate import (
    MAINNET_ROOT_KEY,
    CertificateError,
    CertificateVerifier,
    root_key_from_text,
)
from videobridge.notifier.ic import (
    LOCAL_REJECT,
    CertificateCheck,
    Delivered,
    IcNotifier,
    LoggingNotifier,
    Notifier,
    Outcome,
    Rejected,
    Skipped,
    TransientNotifyError,
)
from videobridge.notifier.identity import InvalidIdentity, identity_principal, load_identity
from videobridge.notifier.routing import plan_decline, plan_end, plan_start, wire_form

__all__ = [
    "DECLINED_METHOD",
    "END_METHOD",
    "LOCAL_REJECT",
    "MAINNET_ROOT_KEY",
    "START_METHOD",
    "CandidArgError",
    "CandidReplyError",
    "CertificateCheck",
    "CertificateError",
    "CertificateVerifier",
    "Delivered",
    "Error",
    "IcNotifier",
    "InvalidIdentity",
    "LoggingNotifier",
    "Notifier",
    "Outcome",
    "Rejected",
    "Reply",
    "Skipped",
    "Success",
    "TransientNotifyError",
    "decode_reply",
    "encode_args",
    "identity_principal",
    "load_identity",
    "plan_decline",
    "plan_end",
    "plan_start",
    "root_key_from_text",
    "wire_form",
]
