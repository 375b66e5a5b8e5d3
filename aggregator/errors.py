"""Domain errors of the aggregator. The command line turns each into a one-line message."""


class AggregatorError(Exception):
    """Base of the aggregator's expected failures; ``str()`` is a complete one-line message."""


class StoreError(AggregatorError):
    """The store cannot be opened or used (unreachable, wrong schema version, bad URL)."""


class SchemaError(StoreError):
    """The database schema is not the version this software needs."""


class IngestError(AggregatorError):
    """The ingest service cannot run (broker refused us, subscription denied, ...)."""


class ReplayError(AggregatorError):
    """A replay input cannot be read."""


class PartialDayError(AggregatorError):
    """A delivery was asked for a day that is not over yet at the site, without allowing it."""
