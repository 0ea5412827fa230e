"""Error and warning types of the spec loader, and the key-path notation they print."""

from __future__ import annotations

import os
from collections.abc import Sequence

# A location inside a spec document: mapping keys (str) and list indices (int).
KeyPath = tuple[str | int, ...]

_MAX_VALUE_CHARS = 60


class SpecError(ValueError):
    """An invalid spec file or value.

    The message is one line: ``FILE:LINE: KEY.PATH: reason``, where each of the three
    location parts is left out when unknown.

    Attributes:
        reason: the message without the location prefix.
        file: the spec file, or None.
        line: 1-based line number in that file, or None.
        key_path: the key path inside the spec document, or None.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | os.PathLike[str] | None = None,
        line: int | None = None,
        key_path: Sequence[str | int] | None = None,
    ) -> None:
        self.reason = " ".join(str(reason).split())
        self.file = os.fspath(file) if file is not None else None
        self.line = line
        self.key_path: KeyPath | None = tuple(key_path) if key_path is not None else None
        super().__init__(self._format())

    def _format(self) -> str:
        return format_located(self.reason, file=self.file, line=self.line, key_path=self.key_path)

    def located(
        self,
        *,
        file: str | os.PathLike[str] | None = None,
        line: int | None = None,
        key_path: Sequence[str | int] | None = None,
    ) -> SpecError:
        """Return a copy with the location parts that this error lacks filled in."""
        return SpecError(
            self.reason,
            file=self.file if self.file is not None else file,
            line=self.line if self.line is not None else line,
            key_path=self.key_path if self.key_path is not None else key_path,
        )


class SpecWarning(UserWarning):
    """A spec that loads but needs attention: an unknown key, an alias, an approximation."""


def format_located(
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    key_path: Sequence[str | int] | None = None,
) -> str:
    """Prefix a message with its location: ``FILE:LINE: KEY.PATH: message``."""
    location = file or ""
    if location and line is not None:
        location = f"{location}:{line}"
    parts = [location, format_key_path(key_path) if key_path else ""]
    prefix = ": ".join(part for part in parts if part)
    return f"{prefix}: {message}" if prefix else message


def format_key_path(key_path: Sequence[str | int]) -> str:
    """Format a key path the way users write it: ``architecture.components[0].vocab_size``."""
    text = ""
    for part in key_path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def describe_value(value: object) -> str:
    """Return a short one-line repr of a user value for an error message."""
    text = " ".join(repr(value).split())
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text
