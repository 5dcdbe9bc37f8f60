"""Daily's facts are stated once for the bridge (`daily/protocol.py`); the emulator keeps its own
copies (an independent oracle), and the two must agree. The module stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from videobridge.chats import room_name
from videobridge.daily import protocol
from videobridge.emulator import api as emulator_api
from videobridge.emulator import state as emulator_state
from videobridge.webhooks.signature import HANDLED


def test_the_emulator_agrees_with_the_clients_facts() -> None:
    assert set(emulator_api.EVENT_TYPES) == set(protocol.EVENT_TYPES) == HANDLED
    for name in ("a", "G" + "x" * 127, "with-dash_and_underscore", "", "x" * 129, "sp ace", "dot.ted", "é"):
        assert bool(protocol.ROOM_NAME.match(name)) == bool(emulator_state.ROOM_NAME_RE.match(name)), name


@pytest.mark.parametrize("module", ["videobridge.daily.protocol", "videobridge.daily.errors"])
def test_facts_and_errors_import_without_the_http_client(module: str) -> None:
    code = f"import sys, {module}; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_room_names_the_bridge_makes_fit_dailys_pattern() -> None:
    from videobridge.chats import DirectChat, GroupChat

    for chat in (GroupChat("ll4qc-niaaa-aaaap-qvfoq-cai"),
                 DirectChat(("724ke-xyaaa-aaaan-ayptq-cai", "hut2x-yaaaa-aaaaq-bi6za-cai"))):
        assert protocol.ROOM_NAME.match(room_name(chat))
