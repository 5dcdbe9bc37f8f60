"""The HTTP face of the bridge (aiohttp)."""

from videobridge.web.app import BRIDGE, make_app

__all__ = ["BRIDGE", "make_app"]
