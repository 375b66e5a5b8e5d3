"""Loading a configuration model from a TOML file plus environment overrides, validated once.

Why not pydantic-settings: we need to say *where* a bad value came from (the file's key path or
the environment variable that set it) and to refuse secrets written into the file; both are a few
lines here and awkward to bolt onto its sources.

Rules:
- ``PREFIX__SECTION__KEY=value`` in the environment overrides ``[section] key`` of the file.
- Fields typed ``SecretStr`` are secrets: accepted from the environment only (or through a
  ``*_file`` path field next to them), never from the TOML file, and never printed.
- Types are strict: ``port = "8883"`` is not a number and ``tls = "yes"`` is not a boolean (no
  string-to-number or yes/no/on/off coercion). The file and the environment are validated as
  JSON in pydantic's strict mode, which still reads text as what text stands for (a path, one
  of an enum's values, an ISO time) and an integer where a number is wanted.
- An environment value is text. For a key whose type is text (a string, a path, a secret, one
  of a set of words, a time) it is taken as it is; for any other key (a number, a boolean, a
  list, a whole section) it must be JSON: ``8883``, ``true``, ``[0.5, 0.0]``, ``{"host": "b"}``.
"""

import enum
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import date, time
from pathlib import Path, PurePath
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, SecretStr, ValidationError

from footfall.redact import is_secret_key, redact, redact_value, remember_secret

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration that cannot be used. ``errors`` holds one ``key.path: message`` per line."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: invalid configuration\n" + "\n".join(f"  {e}" for e in errors))


def env_var_name(prefix: str, path: tuple[str, ...]) -> str:
    return prefix + "__" + "__".join(p.upper() for p in path)


def _is_secret(annotation: object) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


def _submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
    return None


def secret_paths(model: type[BaseModel], base: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of every secret field in ``model`` and its nested models."""
    out = []
    for name, field in model.model_fields.items():
        if _is_secret(field.annotation):
            out.append((*base, name))
        sub = _submodel(field.annotation)
        if sub is not None:
            out.extend(secret_paths(sub, (*base, name)))
    return out


def _lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(str(path), ["is a directory, not a TOML file"]) from None
    except PermissionError:
        raise ConfigError(str(path), ["permission denied"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None


def _env_overrides(prefix: str, environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    head = prefix + "__"
    return {
        tuple(p.lower() for p in key[len(head) :].split("__")): value
        for key, value in environ.items()
        if key.startswith(head) and len(key) > len(head)
    }


_TEXT_TYPES: tuple[type, ...] = (str, SecretStr, PurePath, date, time, UUID)


def _field_annotation(model: type[BaseModel], path: tuple[str, ...]) -> object | None:
    """The annotation of the field at ``path`` (None for a key the model does not have)."""
    annotation: object = model
    for part in path:
        sub = _submodel(annotation)
        if sub is None or part not in sub.model_fields:
            return None
        annotation = sub.model_fields[part].annotation
    return annotation


def _takes_text(annotation: object) -> bool:
    """Whether a key of this type is written as plain text (its environment value is used as
    it is) rather than as JSON."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _takes_text(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_takes_text(a) for a in args)
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in typing.get_args(annotation))
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return all(isinstance(m.value, str) for m in annotation)
        return issubclass(annotation, _TEXT_TYPES)  # a datetime is a date: ISO text too
    return False


def _env_value(
    model: type[BaseModel], path: tuple[str, ...], raw: str, var: str
) -> tuple[Any, str | None]:
    """The value an environment variable stands for, or an error line."""
    annotation = _field_annotation(model, path)
    if annotation is None or _takes_text(annotation):
        return raw, None  # an unknown key is reported as such by validation
    try:
        return json.loads(raw), None
    except ValueError:
        pass
    key = ".".join(path)
    # The value of a whole section may hold a password: only a plain value is echoed.
    echoed = f", got {raw!r}" if _submodel(annotation) is None else ""
    return None, redact(
        f"{key}: not JSON: in the environment, numbers, true/false, lists and sections are "
        f"written as JSON (e.g. 8883, true, [1, 2]){echoed} (from {var})"
    )


def _json_default(value: object) -> object:
    # TOML has dates and times of its own; in JSON they are ISO text, which strict validation
    # reads back as dates and times.
    if isinstance(value, date | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a configuration value")


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def load_config(
    model: type[M],
    path: Path | None,
    *,
    env_prefix: str,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> M:
    """Build ``model`` from the TOML file at ``path`` (optional) and the environment.

    ``defaults`` fill top-level keys the file leaves out. Raises :class:`ConfigError` listing every
    problem, each with its key path.
    """
    environ = os.environ if environ is None else environ
    source = str(path) if path is not None else "(defaults)"
    data: dict[str, Any] = {**(defaults or {}), **(_read_toml(path) if path is not None else {})}

    errors = [
        f"{'.'.join(p)}: secrets are not read from the config file; set "
        f"{env_var_name(env_prefix, p)} or {'.'.join(p)}_file"
        for p in secret_paths(model)
        if _lookup(data, p)
    ]
    overrides = _env_overrides(env_prefix, environ)
    origin = {p: env_var_name(env_prefix, p) for p in overrides}
    # A section the file does not have, made by environment variables alone (a secret meant
    # for another configuration, say): its errors must say where it came from.
    created: dict[str, list[str]] = {}
    for p in overrides:
        if len(p) > 1 and p[0] not in data:
            created.setdefault(p[0], []).append(origin[p])
    for p, raw in overrides.items():
        value, problem = _env_value(model, p, raw, origin[p])
        if problem is not None:
            errors.append(problem)
        else:
            _set(data, p, value)
    if errors:
        raise ConfigError(source, errors)
    try:
        return model.model_validate_json(json.dumps(data, default=_json_default), strict=True)
    except ValidationError as exc:
        raise ConfigError(source, _format_errors(exc, origin, created)) from None


def _format_errors(
    exc: ValidationError,
    origin: Mapping[tuple[str, ...], str],
    created: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        # A key set inside a JSON environment value came from that variable too.
        source = next((origin[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origin), None)
        where = f" (from {source})" if source else ""
        if not source and created and loc and loc[0] in created:
            names = ", ".join(created[loc[0]])
            where = f" (the file has no [{loc[0]}] section: it comes from {names})"
        if (
            err["type"] not in ("missing", "extra_forbidden")
            and not _is_secret_loc(err)
            and _echoable(err["input"])
        ):
            # Echoed with the values of secret-named keys masked (a section given as a JSON
            # environment value may hold a password) and so are passwords in URLs.
            message += f", got {redact_value(err['input'])!r}"
        out.append(redact(f"{key}: {message}{where}"))
    return out


def _echoable(value: object) -> bool:
    """Whether an invalid value may be shown back (masked by :func:`redact_value`). A list is
    shown only when it holds nothing but numbers (a line's points): one given where a section
    belongs could be a password without its key."""
    if isinstance(value, list | tuple):
        return all(_numeric(v) for v in value)
    return True


def _numeric(value: object) -> bool:
    if isinstance(value, list | tuple):
        return all(_numeric(v) for v in value)
    return isinstance(value, int | float) or value is None


def _is_secret_loc(err: Any) -> bool:
    # Never echo the input of a field that may hold a secret.
    return any(is_secret_key(str(p)) for p in err["loc"])


def read_secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    """The secret from the environment (``value``) or from ``file``; the file wins if both."""
    # Remembered, so that whatever message it may end up in is masked (footfall.redact).
    if file is not None:
        try:
            return remember_secret(file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(str(file), [f"cannot read {what}: {exc.strerror}"]) from None
    return remember_secret(value.get_secret_value()) if value is not None else None
