"""What the aggregator's command modules share: loading the configuration (with ``--store``
laid over it), turning the library's errors into one line and an exit, and the store a command
works on. :mod:`aggregator.cli`, :mod:`aggregator.fleet_cli` and :mod:`aggregator.survey_cli`
import it; none of them imports another's helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from aggregator.config import AggregatorConfig, StoreSettings, load_aggregator_config
from aggregator.errors import AggregatorError
from footfall.cli_support import config_errors_exit, fail, setup_errors_exit

if TYPE_CHECKING:  # the store (SQLAlchemy) loads only for the commands that open one
    from aggregator.store import EventStore


@contextmanager
def domain_errors(code: int = 1) -> Iterator[None]:
    """An :class:`AggregatorError` (the store, the ingest, the fleet registry, ...) becomes its
    one line on stderr and exit ``code``."""
    try:
        yield
    except AggregatorError as exc:
        raise fail(str(exc), code) from None


def load_config(config: Path | None, store: str | None = None) -> AggregatorConfig:
    """The validated configuration (exit 2 listing every problem), with ``--store`` instead of
    the file's store URL when given."""
    with config_errors_exit():
        cfg = load_aggregator_config(config)
    if store is None:
        return cfg
    try:
        settings = StoreSettings(
            url=store,
            password=cfg.store.password,
            password_file=cfg.store.password_file,
            auto_upgrade=cfg.store.auto_upgrade,
        )
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise fail(f"--store: {message}", code=2) from None
    return cfg.model_copy(update={"store": settings})


def check_setup(checks: list[Callable[[], object]]) -> None:
    """Run the checks of :mod:`aggregator.setup_checks` a command needs; the first file that
    cannot be used ends it with one line (exit 1)."""
    with setup_errors_exit():
        for check in checks:
            check()


@contextmanager
def opened_store(cfg: AggregatorConfig, *, upgrade: bool | None = None) -> Iterator[EventStore]:
    """The configured store for the body of a command, closed after it; a store that cannot be
    opened or used ends the command with one line (exit 1, or 2 for its configuration)."""
    from aggregator.store.open import open_store

    with domain_errors(), config_errors_exit():
        event_store = open_store(cfg.store, cfg.fleet, upgrade=upgrade)
        try:
            yield event_store
        finally:
            event_store.close()
