"""An in-package Daily REST emulator: powers `videobridge sandbox` and the tests."""

from __future__ import annotations

from videobridge.emulator.app import DailyEmulator
from videobridge.emulator.state import EmulatedParticipant, EmulatorError
from videobridge.emulator.webhooks import sign as sign_webhook

__all__ = ["DailyEmulator", "EmulatedParticipant", "EmulatorError", "sign_webhook"]
