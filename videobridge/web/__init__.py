"""The HTTP face of the bridge (aiohttp)."""

from videobridge.web.app import make_app
from videobridge.web.keys import BRIDGE

__all__ = ["BRIDGE", "make_app"]
