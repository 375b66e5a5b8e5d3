"""``python -m aggregator`` is ``footfall-aggregator``."""

from aggregator.cli import app

app(prog_name="footfall-aggregator")
