"""Identifiers for sites, spots and agents.

They become MQTT topic levels, S3 object keys, file names and Excel sheet names, so the charset is
deliberately small: no '/', '+', '#', '.', whitespace or control characters can ever reach those
places through an id.
"""

import re
from typing import Annotated

from pydantic import AfterValidator

ID_MAX_LENGTH = 32
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
ID_RULE = (
    f"1-{ID_MAX_LENGTH} characters of letters, digits, '-' or '_', starting with a letter or digit"
)


def check_id(value: str) -> str:
    """Return ``value`` unchanged if it is a safe id, else raise ``ValueError`` naming the rule."""
    if len(value) > ID_MAX_LENGTH or not _ID_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid id: use {ID_RULE}")
    return value


SafeId = Annotated[str, AfterValidator(check_id)]
"""A site, spot or agent id, validated by :func:`check_id`."""
