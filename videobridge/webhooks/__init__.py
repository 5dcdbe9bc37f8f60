"""Daily webhooks: verifying a delivery (`signature.py`), whether Daily's webhook is ours and putting
it back (`ownership.py`, light: the CLI imports it), and the daemon's watch over it (`monitor.py`)."""
