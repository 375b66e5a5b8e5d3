"""What both command-line programs share: logging setup, turning library errors into exits, and
the last line of defence that keeps a traceback off the operator's screen.

Every failure a command expects (a domain error of the library, a file it cannot use) becomes one
line on stderr, ``error: <thing>: <what happened>; <what to do>``, and a non-zero exit: 1 for a
failure, 2 for an invalid configuration or option. :class:`ReportingGroup` catches what a
command did not: a file the operating system refused, an S3 client without credentials or
endpoint, a configuration error raised late. The traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from rich.table import Table

from footfall.redact import redact, redact_logs
from footfall.settings import ConfigError

# Whether ``--debug`` was given to the command running now: set by the top-level callback,
# read where an error is reported (``fail`` is called deep inside commands, far from the context).
_debug: ContextVar[bool] = ContextVar("footfall_debug", default=False)

DebugOpt = Annotated[
    bool,
    typer.Option("--debug", help="Show tracebacks: before an error's one line, and in the log"),
]


JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Machine-readable output: the rows as a JSON list of objects"),
]


def table_rows(table: Table) -> list[dict[str, str]]:
    """The rows of a rich table as objects keyed by the column headers, cells as printed."""
    columns = [(str(c.header), [str(cell) for cell in c.cells]) for c in table.columns]
    return [{name: cells[i] for name, cells in columns} for i in range(table.row_count)]


def print_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def print_table(table: Table, as_json: bool = False, *, width: int = 200) -> None:
    """A table for the operator, or with ``--json`` the same rows as JSON on stdout."""
    if as_json:
        print_json(table_rows(table))
        return
    from rich.console import Console

    Console(width=width).print(table)


NoFileChecksOpt = Annotated[
    bool,
    typer.Option(
        "--no-file-checks",
        help="Check the settings only, not the files and credentials they name (e.g. before "
        "the files are installed)",
    ),
]


T = TypeVar("T")


def warn_deprecated(old: str, new: str) -> None:
    """The one line on stderr for a spelling that still works for this release."""
    typer.secho(
        f"warning: {old} is deprecated, use {new}; the old spelling goes in the next release",
        fg=typer.colors.YELLOW,
        err=True,
    )


def one_spelling(value: T | None, old_value: T | None, *, new: str, old: str) -> T | None:
    """The value given as ``new``, or as its deprecated spelling ``old`` (which warns); both
    given is an error (exit 2), since they could disagree."""
    if old_value is None:
        return value
    if value is not None:
        raise fail(f"give {new} only: {old} is its deprecated spelling", 2)
    warn_deprecated(old, new)
    return old_value


def required_spelling(value: T | None, old_value: T | None, *, new: str, old: str) -> T:
    """:func:`one_spelling` for an option a command needs: neither spelling given is exit 2."""
    found = one_spelling(value, old_value, new=new, old=old)
    if found is None:
        raise fail(f"missing option {new}", 2)
    return found


def _no_usage(_ctx: Any) -> list[str]:
    return []


def readable_metavars(command: Any) -> None:
    """Value placeholders an operator can read in ``--help``: none for a flag (typer shows
    ``<bool>``), the element for a repeatable option (not ``<list[Path]>``), ``<int>`` with its
    range rather than ``<int range>``, and the date format as ``YYYY-MM-DD``. Options with a
    metavar of their own keep it; hidden arguments stay out of the usage line."""
    from typer._click import Context

    ctx = Context(command)
    params = list(command.params)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if param.param_type_name == "argument" and param.hidden:
            # A deprecated positional: hidden from the help, and from the usage line too,
            # which typer writes for every argument.
            param.get_usage_pieces = _no_usage
            continue
        if param.param_type_name != "option" or param.metavar is not None:
            continue
        if param.is_flag or param.count:
            param.metavar = ""
            continue
        shown = param.display_type(ctx)
        if shown.startswith("<list[") and shown.endswith("]>"):
            shown = f"<{shown[6:-2].lower()}>"
        shown = shown.replace(" range>", ">").replace("%Y-%m-%d", "YYYY-MM-DD")
        param.metavar = shown
    for sub in getattr(command, "commands", {}).values():
        readable_metavars(sub)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OneLineFormatter(logging.Formatter):
    """Log records without the tracebacks attached to them: a loop that logs an unexpected
    error and goes on (or dies and stops the agent) says so in its line; the traceback is for
    ``--debug``."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def configure_logging(verbose: bool, *, tracebacks: bool = False) -> None:
    """Log to stderr, at DEBUG with ``verbose``; tracebacks only with ``tracebacks``. Does
    nothing when logging is configured already (as :func:`logging.basicConfig`)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(LOG_FORMAT) if tracebacks else OneLineFormatter(LOG_FORMAT)
        )
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose else logging.INFO)
    redact_logs()


def start(*, verbose: bool, debug: bool) -> None:
    """What the top-level callback of each program does: logging (with tracebacks only under
    ``--debug``), and ``--debug`` kept for :class:`ReportingGroup` and :func:`fail`."""
    _debug.set(debug)
    configure_logging(verbose, tracebacks=debug)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line to stderr (secrets masked) and return the exit to raise. Called
    while an exception is handled, under ``--debug`` its traceback comes first."""
    _print_traceback()
    typer.secho(f"error: {redact(message)}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextmanager
def config_errors_exit() -> Iterator[None]:
    """Turn a :class:`ConfigError` into its listing on stderr and exit code 2."""
    try:
        yield
    except ConfigError as exc:
        _print_traceback()
        typer.echo(redact(str(exc)), err=True)
        raise typer.Exit(2) from None


def _print_traceback() -> None:
    exc = sys.exception()
    if exc is not None and _debug.get():
        typer.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)


def report_valid(path: Path, problems: list[str] | None = None) -> None:
    """``<path>: ok``, or each problem with a file the configuration names as its own
    ``error:`` line and exit 2."""
    if problems:
        for problem in problems:
            typer.secho(f"error: {redact(problem)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    typer.echo(f"{path}: ok")


@contextmanager
def setup_errors_exit(code: int = 1) -> Iterator[None]:
    """A :class:`footfall.preflight.SetupError` (a file a setting names cannot be used) becomes
    its one line and exit ``code``."""
    from footfall.preflight import SetupError

    try:
        yield
    except SetupError as exc:
        raise fail(str(exc), code) from None


# What an operator can do about each refusal of the operating system.
_OS_ADVICE = {
    errno.ENOENT: "check the path, or create what is missing",
    errno.EACCES: "give a path this user may use, or change its permissions",
    errno.EPERM: "give a path this user may use, or change its permissions",
    errno.EROFS: "give a path on a writable file system",
    errno.EISDIR: "give a file, not a directory",
    errno.ENOTDIR: "check the path: part of it is a file, not a directory",
    errno.EEXIST: "remove it, or give another path",
    errno.ENOSPC: "free some space on that disk, or give a path on another one",
    errno.ECONNREFUSED: "check the host and port, and that the service is running",
    errno.EHOSTUNREACH: "check the host name and the network",
    errno.ENETUNREACH: "check the host name and the network",
    errno.ETIMEDOUT: "check the host and port, and that the service is running",
}
_DEFAULT_ADVICE = "run again with --debug to see where it happened"


def os_error_line(exc: OSError) -> str:
    """``<file>: <what the system said>; <what to do>`` for a refused file or connection."""
    what = exc.strerror or str(exc) or type(exc).__name__
    thing = ""
    if exc.filename is not None:
        thing = f"{exc.filename}: "
        if exc.filename2 is not None:
            thing = f"{exc.filename} -> {exc.filename2}: "
    return f"{thing}{what}; {_OS_ADVICE.get(exc.errno or 0, _DEFAULT_ADVICE)}"


def s3_error_line(exc: Exception) -> str | None:
    """One line for an error of the S3 client (botocore), or None for anything else."""
    if not type(exc).__module__.startswith("botocore"):
        return None
    from footfall.objectstore import describe_s3_error

    return f"s3: {describe_s3_error(exc)}"


def _loaded_classes(names: tuple[tuple[str, str], ...]) -> tuple[type[BaseException], ...]:
    # Looked up among the modules already imported, not imported: an exception of a class whose
    # module was never loaded cannot have been raised, and the commands import lazily so that
    # `--help` and the light commands start fast.
    found = []
    for module, name in names:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


class ReportingGroup(TyperGroup):
    """The top-level command group of a program: whatever escapes a command becomes one line
    on stderr and a non-zero exit, with the traceback before it only under ``--debug``.

    A subclass per program names its domain errors (``str()`` is a complete line; exit 1) as
    ``(module, class name)`` pairs."""

    domain_errors: ClassVar[tuple[tuple[str, str], ...]] = (
        ("footfall.preflight", "SetupError"),
        ("footfall.mqtt_link", "LinkError"),
        ("footfall.objectstore", "ObjectStoreError"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        readable_metavars(self)

    def invoke(self, ctx: Any) -> Any:
        token = _debug.set(False)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # exits, Ctrl-C and usage errors are click's to report
        except Exception as exc:
            code, line = self.describe(exc)
            if line is None:
                raise typer.Exit(code) from None
            raise fail(line, code) from None
        finally:
            _debug.reset(token)

    def describe(self, exc: Exception) -> tuple[int, str | None]:
        """The exit code and the line for ``exc`` (None: already printed)."""
        if isinstance(exc, ConfigError):
            _print_traceback()
            typer.echo(redact(str(exc)), err=True)
            return 2, None
        if isinstance(exc, _loaded_classes(self.domain_errors)):
            return 1, str(exc)
        if isinstance(exc, OSError):
            return 1, os_error_line(exc)
        if isinstance(exc, ImportError):
            # The project's own say which extra to install; Python's name the module only.
            if exc.name is None:
                return 1, str(exc)
            return 1, f"{exc}; install the extra of this package that provides {exc.name!r}"
        s3 = s3_error_line(exc)
        if s3 is not None:
            return 1, s3
        detail = str(exc).strip().replace("\n", " ") or "no message"
        return 1, (
            f"unexpected {type(exc).__name__}: {detail}; this is a bug: run again with --debug "
            "and report the traceback"
        )
