"""``python -m aggregator`` is ``footfall-aggregator``."""

from aggregator.cli import app

# Guarded: the commit process is started with "spawn", which imports this module again.
if __name__ == "__main__":
    app(prog_name="footfall-aggregator")
