"""The aggregator: consumes PersonEvents from many agents, stores them idempotently, and builds
per-site workbooks."""
