"""Typed application keys (aiohttp `web.AppKey`)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from videobridge.auth import VideoCallClaims
from videobridge.bridge import Bridge

BRIDGE = web.AppKey("bridge", Bridge)
BACKGROUND = web.AppKey("background", set[asyncio.Task[Any]])
CLAIMS = web.RequestKey("claims", VideoCallClaims)
OUTCOME = web.RequestKey("outcome", str)
