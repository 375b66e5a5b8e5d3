"""The agent configuration as ``footfall-agent`` commands take it: ``--config/-c`` everywhere,
and for this release the positional form ``run``, ``deliver``, ``check-broker`` and
``validate-config`` used to take, with a warning."""

from pathlib import Path
from typing import Annotated

import typer

from footfall.cli_support import one_spelling, required_spelling

AgentConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Agent configuration file (TOML)", show_default=False),
]
# The old spelling: hidden from the help, still accepted until the next release.
LegacyConfigArg = Annotated[
    Path | None, typer.Argument(hidden=True, show_default=False, metavar="CONFIG")
]

_NEW = "--config CONFIG"
_OLD = "a positional CONFIG"


def agent_config(config: Path | None, legacy: Path | None) -> Path:
    """The configuration file a command needs, from ``--config`` or the old positional."""
    return required_spelling(config, legacy, new=_NEW, old=_OLD)


def optional_agent_config(config: Path | None, legacy: Path | None) -> Path | None:
    return one_spelling(config, legacy, new=_NEW, old=_OLD)
