"""Turning untrusted bytes into contract records, with errors that name the offending field."""

from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from footfall.contract.events import MAX_EVENT_BYTES

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted path, e.g. "age.group"; "payload" for problems with the bytes themselves
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ContractError(ValueError):
    """A payload that is not a valid record of the contract. ``errors`` names every bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))

    @property
    def fields(self) -> list[str]:
        return [e.field for e in self.errors]


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "payload"


def errors_from_validation(exc: ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "json_invalid":
            out.append(FieldError("payload", f"not JSON ({err['ctx'].get('error', message)})"))
            continue
        if err["type"] == "model_type" or err["type"] == "model_attributes_type":
            message = "must be a JSON object"
        out.append(FieldError(_field_path(err["loc"]), message))
    return out


def decode(model: type[R], raw: bytes, *, max_bytes: int = MAX_EVENT_BYTES) -> R:
    """Parse ``raw`` (UTF-8 JSON) into ``model``, strictly: no type coercion, no unknown fields.

    Raises :class:`ContractError`; never anything else for any input bytes.
    """
    if len(raw) > max_bytes:
        raise ContractError(
            [FieldError("payload", f"{len(raw)} bytes exceeds the limit of {max_bytes}")]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(
            [FieldError("payload", f"not valid UTF-8 (byte {exc.start})")]
        ) from None
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ContractError(errors_from_validation(exc)) from None
    except (ValueError, RecursionError) as exc:  # e.g. absurdly deep nesting
        raise ContractError(
            [FieldError("payload", f"not decodable ({type(exc).__name__})")]
        ) from None
