"""The configuration reference, generated from the config models so it cannot drift.

``python -m infra.config_docs [FILE]`` rewrites ``docs/configuration.md``; a test fails when the
checked-in file differs from what the models say.

It lives in ``infra/`` (developer tooling, above every package) because it reads the
configuration models of both programs: the core (``footfall/``) imports neither of them, and the
two programs do not import each other for their configuration.
"""

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from footfall.settings import env_var_name

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = " or ".join(_type_name(a) for a in args)
        return f"{inner} (optional)" if len(args) < len(typing.get_args(annotation)) else inner
    if origin is typing.Literal:
        return " / ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (list, tuple):
        items = typing.get_args(annotation)
        return f"list of {_type_name(items[0])}" if items else "list"
    if origin is dict:
        return "table"
    if annotation is SecretStr:
        return "secret"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        if hasattr(annotation, "__members__"):  # enums
            return " / ".join(repr(m.value) for m in annotation.__members__.values())
        return {
            "str": "text",
            "int": "integer",
            "float": "number",
            "bool": "true / false",
            "Path": "path",
            "PosixPath": "path",
            "time": "time (HH:MM)",
        }.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(section defaults)"
        return f"`{value!r}`" if value not in ([], {}) else "empty"
    if field.default is PydanticUndefined:
        return "**required**"
    if field.default is None:
        return "unset"
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if hasattr(value, "value"):
        value = value.value
    return f"`{value}`" if not isinstance(value, str) else f'`"{value}"`'


def _submodel(annotation: Any) -> type[BaseModel] | None:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _rows(model: type[BaseModel], prefix: tuple[str, ...], env_prefix: str | None) -> list[str]:
    rows = []
    sections = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        sub = _submodel(field.annotation)
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        if sub is not None:
            is_list = typing.get_origin(field.annotation) is list
            sections.append((path, sub, description, is_list))
            continue
        secret = (
            " Secret: environment or `*_file` only."
            if _type_name(field.annotation).startswith("secret")
            else ""
        )
        rows.append(
            f"| `{'.'.join(path)}` | {_type_name(field.annotation)} | {_default(field)} | "
            f"{description}{secret} | {f'`{env_var_name(env_prefix, path)}`' if env_prefix else 'file only'} |"
        )
    out = rows
    for path, sub, description, is_list in sections:
        header = f"[[{'.'.join(path)}]]" if is_list else f"[{'.'.join(path)}]"
        out.append("")
        out.append(f"#### `{header}`")
        out.append("")
        if description:
            out.append(description)
            out.append("")
        out.append("| key | type | default | meaning | environment |")
        out.append("| --- | --- | --- | --- | --- |")
        # Items of a list of tables have no environment form: the loader overrides keys, not items.
        out.extend(_rows(sub, path, None if is_list else env_prefix))
    return out


def render() -> str:
    from aggregator.config import ENV_PREFIX as AGG_ENV
    from aggregator.config import AggregatorConfig
    from edge_agent.config import ENV_PREFIX as AGENT_ENV
    from edge_agent.config import AgentConfig

    parts = [
        "# Configuration reference",
        "",
        "Generated from the configuration models by `python -m infra.config_docs`; a test keeps it",
        "current. Both programs read one TOML file; any key can be overridden from the environment",
        "(`PREFIX__SECTION__KEY`, shown per key). Secrets are accepted only from the environment or from",
        "the file named by the matching `*_file` key. Check a file with `validate-config`.",
        "",
        "No message shows a secret: configuration errors, store and broker errors, command output and",
        "log lines mask passwords in URLs (`postgresql://u:***@db/x`, `?password=***`, `rtsp://admin:***@`),",
        "the values of keys that name a password or secret (also inside a JSON environment value), and",
        "every secret the program has read. A database URL must not carry its password at all: give",
        "`store.password` through the environment or `store.password_file`.",
        "",
        'Types are strict, in the file and in the environment: `port = "8883"` is not a number,',
        '`tls = "yes"` or `"off"` is not a boolean, `1` is not `true`; an integer is accepted where a',
        "number is wanted. An environment value is taken as it is for a key of type text, path, secret",
        "or one of a set of words; for every other key (numbers, true / false, lists, a whole section)",
        "it is JSON: `FOOTFALL_AGENT__MQTT__PORT=1884`, `FOOTFALL_AGENT__MQTT__TLS=false`,",
        "`FOOTFALL_AGENT__COUNTING__LINE='[[0.25, 0], [0.25, 1]]'`,",
        '`FOOTFALL_AGENT__S3=\'{"bucket": "crops"}\'`. A quoted `\'"1884"\'` is text, so it is refused',
        "for the port. Remote configurations are checked the same way.",
        "",
        "The counting line is also checked against the picture once the source delivers its first frame",
        '(which `validate-config` cannot do): with `counting.units = "pixels"` a point outside the',
        "frame, or a hysteresis over half its shorter side, stops the clip or the agent with an error",
        "naming the setting and the frame size, and a remote configuration with such a line is rejected.",
        "",
    ]
    for title, model, env, example in (
        (
            "Edge agent (`footfall-agent`)",
            AgentConfig,
            AGENT_ENV,
            "infra/config/agent.example.toml",
        ),
        (
            "Aggregator (`footfall-aggregator`)",
            AggregatorConfig,
            AGG_ENV,
            "infra/config/aggregator.example.toml",
        ),
    ):
        parts += [f"## {title}", "", f"Example: [`{example}`](../{example}).", ""]
        parts += [
            "| key | type | default | meaning | environment |",
            "| --- | --- | --- | --- | --- |",
        ]
        parts += _rows(model, (), env)
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    target.write_text(render(), encoding="utf-8")
    print(target)
