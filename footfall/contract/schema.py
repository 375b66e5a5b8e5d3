"""JSON Schema export of the contract. ``python -m footfall.contract.schema [DIR]`` rewrites the
checked-in files; a test fails when they differ from the models."""

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from footfall.contract.config_result import ConfigResult
from footfall.contract.events import PersonEvent
from footfall.contract.receipt import Receipt
from footfall.contract.status import AgentStatus

SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "person_event.v1.schema.json": PersonEvent,
    "agent_status.v1.schema.json": AgentStatus,
    "config_result.v1.schema.json": ConfigResult,
    "receipt.v1.schema.json": Receipt,
}
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"


def schema_text(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMA_FILES.items():
        path = directory / name
        path.write_text(schema_text(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR):
        print(path)
