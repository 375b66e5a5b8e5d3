"""Keeping text from devices inert in Excel, and sheet names valid."""

import re

# A cell whose text starts with one of these can be turned into a formula by Excel or by a user
# pressing F2+Enter (OWASP "CSV injection"); tab and CR start the same trick in some readers.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
SHEET_NAME_MAX = 31
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
_RESERVED = {"history"}  # Excel reserves this name


def is_formula_like(text: str) -> bool:
    return text.startswith(FORMULA_TRIGGERS)


def xml_text(text: str) -> str:
    """Escape text for an XML text node (and drop characters XML 1.0 cannot carry)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "", text)


class SheetNames:
    """Hands out valid, unique (case-insensitively, as Excel compares) sheet names."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, wanted: str) -> str:
        base = _SHEET_FORBIDDEN.sub("_", wanted).strip("'") or "Sheet"
        if base.lower() in _RESERVED:
            base = f"{base}_"
        name = base[:SHEET_NAME_MAX]
        n = 2
        while name.lower() in self._taken:
            suffix = f" ({n})"
            name = base[: SHEET_NAME_MAX - len(suffix)] + suffix
            n += 1
        self._taken.add(name.lower())
        return name


def wrapped_lines(text: str, width: float) -> int:
    """Lines ``text`` wraps to in a column ``width`` characters wide (words kept whole; with a
    margin, as proportional fonts run wider than the width's digit count on capitals); a line
    break in the text starts a new line."""
    if "\n" in text:
        return sum(wrapped_lines(part, width) for part in text.split("\n"))
    usable = max(1.0, width * 0.9 - 1)
    lines, used = 1, 0.0
    for word in text.split():
        if len(word) > usable:  # a long name breaks where it must
            lines += int(len(word) // usable) + (0 if used == 0 else 1)
            used = len(word) % usable
            continue
        need = len(word) if used == 0 else used + 1 + len(word)
        if need <= usable or used == 0:
            used = need
        else:
            lines, used = lines + 1, len(word)
    return lines
