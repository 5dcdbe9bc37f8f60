"""videobridge: the OpenChat video bridge (OpenChat JWT in, Daily room and meeting token out)."""

__version__ = "0.1.0"
