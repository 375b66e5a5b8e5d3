"""The checked-in JSON Schema files must equal what the models export."""

from pathlib import Path

import pytest

from footfall.contract.schema import SCHEMA_FILES, schema_text

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_checked_in_schema_is_current(name: str) -> None:
    on_disk = (SCHEMAS / name).read_text(encoding="utf-8")
    assert on_disk == schema_text(SCHEMA_FILES[name]), (
        f"schemas/{name} is stale: run `python -m footfall.contract.schema` and commit the result"
    )
