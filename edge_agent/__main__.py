"""``python -m edge_agent``: the same as ``footfall-agent``."""

from edge_agent.cli import app

app(prog_name="footfall-agent")
