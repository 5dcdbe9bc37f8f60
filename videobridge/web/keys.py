"""Typed application keys (aiohttp `web.AppKey`)."""

from __future__ import annotations

from aiohttp import web

from videobridge.auth import VideoCallClaims
from videobridge.wiring import Bridge

BRIDGE = web.AppKey("bridge", Bridge)
CLAIMS = web.RequestKey("claims", VideoCallClaims)
OUTCOME = web.RequestKey("outcome", str)
