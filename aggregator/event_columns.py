"""The stored event, declared once: each column of the ``events`` table, its SQL type and the field
it holds.

:data:`EVENT_COLUMNS` is the only place that says so. Built from it: the store's table
(:data:`aggregator.store.tables.events`), its insert rows (:mod:`aggregator.store.fast_insert`)
and readers (:class:`aggregator.store.rows.EventRow`, :mod:`aggregator.store.column_reader`),
and the workbook's event frame (:mod:`aggregator.report.source`). A new field of ``PersonEvent``
is one line here, plus the migration that adds its column.

A column names its field by the field's dotted path in the event, as in the event's JSON
(``gender.label``, ``crop.key``, ``age.group_probabilities.25-32``). What the value is - an enum,
stored as its text; a field of an optional record, null when the record is absent; whether the
column may be null at all - is read from the contract's own annotations, not said again here. The
columns that tell how the event arrived (``arrival``) name an attribute of the
:class:`~aggregator.store.rows.StoredEvent` instead.

Types are named here (:class:`SqlType`) and made SQLAlchemy types by the store, so the report,
which reads frames, does not load the database library.
"""

import json
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache, lru_cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from footfall.contract import AGE_GROUPS, AgeGroup, ModelRef, PersonEvent
from footfall.ids import ID_MAX_LENGTH

SqlKind = Literal[
    "uuid", "smallint", "integer", "bigint", "float", "timestamp", "text", "json", "bytes"
]


@dataclass(frozen=True)
class SqlType:
    """A column type that means the same on SQLite and PostgreSQL (see
    :func:`aggregator.store.types.sa_type`); ``timestamp`` is an aware UTC time."""

    kind: SqlKind
    length: int | None = None  # of text and bytes


UUID = SqlType("uuid")
SMALLINT, INTEGER, BIGINT = SqlType("smallint"), SqlType("integer"), SqlType("bigint")
FLOAT = SqlType("float")
TIMESTAMP = SqlType("timestamp")
JSON = SqlType("json")
ID_TEXT = SqlType("text", ID_MAX_LENGTH)
ENUM_TEXT = SqlType("text", 16)
NOTE_TEXT = SqlType("text", 300)
SOURCE_TEXT = SqlType("text", 200)


def models_json(models: Sequence[ModelRef]) -> str:
    """The ``models`` column: the list as JSON text. A fleet runs a handful of model sets, so
    each set is serialized once; the cache key is plain strings, as hashing and comparing
    pydantic models costs more than the serialization it saves."""
    return _models_json_of(tuple((m.role.value, m.name, m.version) for m in models))


@lru_cache(maxsize=256)
def _models_json_of(key: tuple[tuple[str, str, str], ...]) -> str:
    return json.dumps(
        [{"role": role, "name": name, "version": version} for role, name, version in key]
    )


@dataclass(frozen=True)
class EventColumn:
    """One column of the events table.

    ``field`` is the dotted path of the value in the ``PersonEvent``, or with ``arrival`` the
    attribute of the ``StoredEvent``. ``nullable`` defaults to what the contract allows (for an
    arrival column: not null). ``encode`` turns the field's value into the column's where the SQL
    type does not say how (the JSON of ``models``).
    """

    name: str
    type: SqlType
    field: str
    arrival: bool = False
    nullable: bool | None = None
    encode: Callable[[Any], Any] | None = None
    primary_key: bool = False
    comment: str | None = None

    @property
    def may_be_null(self) -> bool:
        if self.nullable is not None:
            return self.nullable
        return False if self.arrival else _resolve(self.field).may_be_null


def age_probability_column(group: AgeGroup) -> str:
    """Column name of one group's probability: ``25-32`` -> ``age_p_25_32``."""
    return "age_p_" + group.value.replace("-", "_")


AGE_PROBABILITY_COLUMNS: dict[AgeGroup, str] = {g: age_probability_column(g) for g in AGE_GROUPS}

# Every field of a PersonEvent is its own column so reports can filter and aggregate in SQL; the 8
# age-group probabilities are columns too rather than JSON, because averaging them per spot is
# the workbook's main query. Only the short list of models is JSON.
EVENT_COLUMNS: tuple[EventColumn, ...] = (
    EventColumn(
        "event_id", UUID, "event_id", primary_key=True, comment="Made on the device; unique"
    ),
    EventColumn("schema_version", SMALLINT, "schema_version"),
    EventColumn("site", ID_TEXT, "site"),
    EventColumn("spot", ID_TEXT, "spot"),
    EventColumn("agent", ID_TEXT, "agent"),
    EventColumn("track_id", BIGINT, "track_id"),
    EventColumn("first_seen", TIMESTAMP, "first_seen"),
    EventColumn("last_seen", TIMESTAMP, "last_seen"),
    EventColumn("dwell_seconds", FLOAT, "dwell_seconds"),
    EventColumn("direction", ENUM_TEXT, "direction"),
    EventColumn("entry_side", ENUM_TEXT, "entry_side"),
    EventColumn("exit_side", ENUM_TEXT, "exit_side"),
    EventColumn("gender", ENUM_TEXT, "gender.label"),
    EventColumn("gender_confidence", FLOAT, "gender.confidence"),
    EventColumn("age_group", ENUM_TEXT, "age.group"),
    EventColumn("age_years", FLOAT, "age.years"),
    *(
        EventColumn(column, FLOAT, f"age.group_probabilities.{group.value}")
        for group, column in AGE_PROBABILITY_COLUMNS.items()
    ),
    EventColumn("face_quality", FLOAT, "face.quality"),
    EventColumn("face_samples", INTEGER, "face.samples"),
    EventColumn("crop_key", SqlType("text", 512), "crop.key"),
    EventColumn("crop_sha256", SqlType("text", 64), "crop.sha256"),
    EventColumn("crop_size_bytes", INTEGER, "crop.size_bytes"),
    EventColumn("crop_note", NOTE_TEXT, "crop_note"),
    EventColumn("models", JSON, "models", encode=models_json),
    EventColumn(
        "received_at",
        TIMESTAMP,
        "received_at",
        arrival=True,
        comment="When the aggregator got it",
    ),
    EventColumn(
        "source",
        SOURCE_TEXT,
        "source",
        arrival=True,
        comment="mqtt:<aggregator client id> or replay:<file name>",
    ),
    # Last, because schema version 3 added it to existing tables (ALTER TABLE appends).
    EventColumn(
        "content_sha256",
        SqlType("bytes", 32),
        "content_sha256",
        arrival=True,
        nullable=True,
        comment="SHA-256 of the event as received, to tell a copy from a conflicting event "
        "with the same id; null for events stored before schema version 3",
    ),
    # Schema version 4 (appended to existing tables, null for the events they hold).
    EventColumn("counted_by", ENUM_TEXT, "counted_by"),
    EventColumn("face_note", NOTE_TEXT, "face.note"),
)

_BY_NAME = {c.name: c for c in EVENT_COLUMNS}


def event_columns(names: Sequence[str] | None = None) -> tuple[EventColumn, ...]:
    """The columns called ``names``, in that order (default: all, in the table's order)."""
    if names is None:
        return EVENT_COLUMNS
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise ValueError(f"not columns of the events table: {', '.join(sorted(unknown))}")
    return tuple(_BY_NAME[n] for n in names)


# -- what a path means, from the contract's annotations ------------------------------------------


@dataclass(frozen=True)
class _Step:
    key: Any  # an attribute name, or the key of a dict
    item: bool  # a dict key rather than an attribute
    optional: bool  # the value here may be None


@dataclass(frozen=True)
class _Field:
    steps: tuple[_Step, ...]
    enum: bool  # the value is an enum, stored as its text

    @property
    def may_be_null(self) -> bool:
        return any(s.optional for s in self.steps)

    @property
    def json_path(self) -> tuple[str, ...]:
        return tuple(str(s.key.value) if isinstance(s.key, Enum) else s.key for s in self.steps)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotated type without ``Annotated`` and ``| None``, and whether None was allowed."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"a column holds one type, not {annotation}")
        annotation = args[0]
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, optional


@cache
def _resolve(path: str) -> _Field:
    """What the field at ``path`` of a PersonEvent is, from the contract's annotations."""
    steps = []
    annotation: Any = PersonEvent
    for part in path.split("."):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                raise ValueError(f"{path}: {annotation.__name__} has no field {part!r}")
            annotation, optional = _unwrap(annotation.model_fields[part].annotation)
            steps.append(_Step(part, False, optional))
        elif get_origin(annotation) is dict:
            key_type, value_type = get_args(annotation)
            annotation, optional = _unwrap(value_type)
            steps.append(_Step(key_type(part), True, optional))
        else:
            raise ValueError(f"{path}: {part!r} is not a field of {annotation}")
    enum = isinstance(annotation, type) and issubclass(annotation, Enum)
    return _Field(tuple(steps), enum)


# -- rows: one tuple expression, compiled from the declaration -----------------------------------

Convert = Callable[[Any], Any]
Conversions = Mapping[SqlKind, Convert]
"""What to call on the values of the columns of a kind of SQL type (e.g. the driver's form of a
time)."""
RowFunction = Callable[[Any], tuple[Any, ...]]


def row_function(
    columns: Sequence[EventColumn],
    *,
    stored: bool,
    convert: Conversions | None = None,
) -> RowFunction:
    """A function making the values of ``columns``, in their order, for one StoredEvent
    (``stored``) or one PersonEvent (without arrival columns).

    Each column's value is its field, an enum as its text, through ``encode`` and then through
    the ``convert`` of its SQL type (e.g. the driver's form of a timestamp); a field of an
    optional record is None when the record is. The function is compiled to one tuple
    expression, as one would write it by hand: the insert is the hot path of ingest, and a
    getter called per column adds about 3 us an event (a fifth of the row's cost on SQLite).
    """
    convert = convert or {}
    names: dict[int, str] = {}  # id of a constant -> its name in the compiled code
    constants: dict[str, Any] = {}
    hoisted: dict[str, str] = {}  # expression -> the local that holds it
    lines: list[str] = []

    def constant(value: Any) -> str:
        if id(value) not in names:
            names[id(value)] = f"_{getattr(value, '__name__', 'key')}_{len(names)}"
            constants[names[id(value)]] = value
        return names[id(value)]

    def value_of(column: EventColumn) -> str:
        if column.arrival:
            if not stored:
                raise ValueError(f"{column.name} is known only for a stored event")
            return f"item.{column.field}"
        field = _resolve(column.field)
        expr, guard = "e", None
        for i, step in enumerate(field.steps):
            expr = f"{expr}[{constant(step.key)}]" if step.item else f"{expr}.{step.key}"
            if step.optional and i < len(field.steps) - 1:
                if expr not in hoisted:
                    local = hoisted[expr] = f"v{len(hoisted)}"
                    lines.append(
                        f"    {local} = {expr}"
                        if guard is None
                        else f"    {local} = None if {guard} is None else {expr}"
                    )
                expr = guard = hoisted[expr]
        if field.enum:
            expr += ".value"
        if field.steps[-1].optional and (field.enum or column.encode):
            raise ValueError(f"{column.name}: an optional enum or encoded field is not supported")
        return expr if guard is None else f"(None if {guard} is None else {expr})"

    values = []
    for column in columns:
        expr = value_of(column)
        if column.encode is not None:
            expr = f"{constant(column.encode)}({expr})"
        to_driver = convert.get(column.type.kind)
        if to_driver is not None:
            if column.may_be_null:
                raise ValueError(f"{column.name}: a nullable column cannot be converted")
            expr = f"{constant(to_driver)}({expr})"
        values.append(expr)
    head = ["def row(item):", "    e = item.event"] if stored else ["def row(e):"]
    source = "\n".join([*head, *lines, f"    return ({', '.join(values)},)"])
    namespace = dict(constants)
    exec(compile(source, f"<event row: {', '.join(c.name for c in columns)}>", "exec"), namespace)
    row: RowFunction = namespace["row"]
    return row


# -- reading: a PersonEvent from its columns -----------------------------------------------------


def _optional_records() -> list[tuple[str, ...]]:
    """JSON paths of the optional records the columns reach into, deepest first."""
    found: set[tuple[str, ...]] = set()
    for column in EVENT_COLUMNS:
        if not column.arrival:
            field = _resolve(column.field)
            path = field.json_path
            found.update(path[: i + 1] for i, s in enumerate(field.steps[:-1]) if s.optional)
    return sorted(found, key=len, reverse=True)


_EVENT_FIELDS = [(c.name, _resolve(c.field).json_path) for c in EVENT_COLUMNS if not c.arrival]
_OPTIONAL_RECORDS = _optional_records()


def _all_null(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_all_null(v) for v in value.values())
    return value is None


def event_of(row: Mapping[Any, Any]) -> PersonEvent:
    """The PersonEvent stored in ``row`` (column name -> value as SQLAlchemy's column types read
    it). An optional record whose every column is null was absent. Validated like any event."""
    doc: dict[str, Any] = {}
    for name, path in _EVENT_FIELDS:
        node = doc
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = row[name]
    for path in _OPTIONAL_RECORDS:
        node = doc
        for key in path[:-1]:
            node = node[key]
        if _all_null(node[path[-1]]):
            node[path[-1]] = None
    return PersonEvent.model_validate(doc)
