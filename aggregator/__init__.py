"""The aggregator: consumes PersonEvents from many agents, stores them idempotently, and builds
per-site workbooks.

It stands on the core (``footfall``: the wire contract, the remote configuration it pushes, the
MQTT link) and on ``models``. It imports the edge agent only for the embedded survey and demo,
which run the agent's pipeline in this process: :mod:`aggregator.embedded`,
:mod:`aggregator.demo` and the commands in :mod:`aggregator.survey_cli`. A contract in
pyproject.toml (``lint-imports``) fails on any other import of ``edge_agent``."""
