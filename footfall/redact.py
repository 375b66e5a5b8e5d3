"""Keeping secrets out of messages: passwords inside URLs and connection strings, values of keys
that name a secret, and the secrets this process has read.

Every one-line error of the command lines, every configuration error and every log line of the
programs goes through :func:`redact` (the CLI helpers and the log handler call it), so a
password that ends up in an exception's text from any library is masked there too, as long as
it was read through :func:`footfall.settings.read_secret` or sits in a URL.
"""

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"

# scheme://user:password@host - the password may itself contain '@' when it was not
# percent-encoded, so it runs to the last '@' before the path.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^/?#\s]*@")
# password=... in a URL query or a libpq connection string (key=value pairs).
_PARAM_SECRET = re.compile(
    r"(?P<head>\b(?:[a-z_]*password|passwd|pwd|[a-z_]*secret[a-z_]*)\s*=\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^&\s'\"]+)",
    re.IGNORECASE,
)
_SECRET_KEY = re.compile(r"password|passwd|secret", re.IGNORECASE)
_MIN_REMEMBERED = 4  # shorter values would mask ordinary words

_known: set[str] = set()
_lock = threading.Lock()


def remember_secret(value: str) -> str:
    """Mask ``value`` wherever it appears in a message from now on; returns it unchanged."""
    if len(value) >= _MIN_REMEMBERED:
        with _lock:
            _known.add(value)
    return value


def forget_secrets() -> None:
    """Forget every remembered secret (tests)."""
    with _lock:
        _known.clear()


def redact(text: str) -> str:
    """``text`` with URL passwords, ``password=...`` parameters and remembered secrets masked."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _PARAM_SECRET.sub(_masked_param, text)
    with _lock:
        known = sorted(_known, key=len, reverse=True)  # a longer secret may contain a shorter
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _masked_param(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[0] in "'\"" else ""
    return match.group("head") + quote + MASK + quote


def is_secret_key(name: str) -> bool:
    return _SECRET_KEY.search(name) is not None


def redact_value(value: Any) -> Any:
    """A copy of a configuration value fit to be echoed: values of secret-named keys masked,
    text redacted, lists and tables walked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and is_secret_key(k) else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's final message (arguments merged in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            # The traceback is formatted later from exc_info; format it now, redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def redact_logs() -> None:
    """Put a :class:`RedactingFilter` on every handler of the root logger (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
