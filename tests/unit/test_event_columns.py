"""The stored event's columns, declared once (aggregator.store.columns): every field of the
contract has its column, and the event read back from its columns is the event."""

import json
import random
from typing import Any

import pytest

from aggregator.event_columns import EVENT_COLUMNS, EventColumn, event_of, row_function
from footfall.contract import Gender
from footfall.contract.examples import example_event, random_events

# Fields of the contract that are not stored: a constant of the contract.
NOT_STORED = {"crop.content_type"}


def _leaves(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in doc.items():
        if isinstance(value, dict):
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_every_field_of_the_event_has_a_column() -> None:
    fields = _leaves(example_event().model_dump(mode="json"))
    stored = {c.field for c in EVENT_COLUMNS if not c.arrival}
    assert fields - NOT_STORED == stored


def test_an_event_read_back_from_its_columns_is_the_event() -> None:
    columns = [c for c in EVENT_COLUMNS if not c.arrival]
    row = row_function(columns, stored=False)
    unknowns = example_event(with_crop=False, gender=Gender.UNKNOWN, age_years=None)
    for event in [*random_events(50, rng=random.Random(5)), unknowns]:
        values = dict(zip([c.name for c in columns], row(event), strict=True))
        values["models"] = json.loads(values["models"])  # as the JSON column reads it back
        assert event_of(values) == event


def test_a_column_must_name_a_field_of_the_contract() -> None:
    wrong = EventColumn("gender", EVENT_COLUMNS[0].type, "gender.lable")
    with pytest.raises(ValueError, match="GenderEstimate has no field 'lable'"):
        row_function([wrong], stored=False)
