"""What the tests of notifications through the fake IC share (the `make_ic`, `ic` and `ic_bridge`
fixtures in conftest.py are built from it): the operator identity, a fast retry policy, the
MultiUser principals, and waiting for the outbox to drain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from fakeic import FakeIC, generate_pem, principal_of_pem
from helpers import ALICE, BOB, bridge_of

from videobridge.outbox import RetryPolicy
from videobridge.principal import bytes_to_principal

FAST_RETRY = RetryPolicy(initial=0.05, maximum=0.2)
OPERATOR_PEM = generate_pem()  # the identity the fake IC accepts calls from
OPERATOR = principal_of_pem(OPERATOR_PEM)
START, END, DECLINED = "start_video_call_v2", "end_video_call_v2", "video_call_declined"
ICFactory = Callable[..., FakeIC]  # the make_ic fixture: make_ic(users=..., local_user_index=...)

# MultiUser canisters and their users, built from the rule by hand: 8 bytes, index low byte,
# then 0x80 | index high bits.
MU_A = bytes_to_principal(bytes.fromhex("0000000000a00001" "0101"))
MU_B = bytes_to_principal(bytes.fromhex("0000000000b00002" "0101"))
CAROL_MU = bytes_to_principal(bytes.fromhex("0000000000a00001" "0080"))  # index 0 in MU_A
DAVE_MU = bytes_to_principal(bytes.fromhex("0000000000a00001" "ffff"))  # index 32767 in MU_A
ERIN_MU = bytes_to_principal(bytes.fromhex("0000000000b00002" "0580"))  # index 5 in MU_B
CONTRACT_USERS = (ALICE, BOB, CAROL_MU, ERIN_MU)  # DAVE_MU lives in CAROL_MU's canister


async def settled(client: TestClient, timeout: float = 10.0) -> None:
    """Until the bridge's outbox is empty (every notification delivered or given up)."""
    deadline = time.monotonic() + timeout
    while bridge_of(client).store.outbox:
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox still holds {len(bridge_of(client).store.outbox)} notifications")
        await asyncio.sleep(0.02)


def received(ic: FakeIC) -> list[tuple[str, str, dict[str, Any]]]:
    """(canister, method, decoded args) of every call the fake IC got, none with ignored fields."""
    assert all(c.ignored == () for c in ic.calls), [c.ignored for c in ic.calls]
    return [(c.canister_id, c.method, c.args) for c in ic.calls]
