"""Errors raised on bad input data."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A file could not be read as the expected format.

    The message always names the file and, where it applies, the 1-based line
    and column, so a person can open the file and see the problem.

    Attributes:
        path: The file.
        line: 1-based line number in the file (header is line 1), or None.
        column: Column name or 1-based column number, or None.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        column: str | int | None = None,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        where = str(self.path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}" if isinstance(column, str) else f", column {column}"
        super().__init__(f"{where}: {message}")


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not have the sha256 it must have.

    Attributes:
        path: The file.
        expected: The sha256 it must have (hex).
        actual: The sha256 it has (hex).
    """

    def __init__(self, path: str | Path, *, expected: str, actual: str, hint: str = "") -> None:
        self.path = Path(path)
        self.expected = expected
        self.actual = actual
        msg = f"{self.path}: sha256 is {actual}, expected {expected}"
        super().__init__(f"{msg}. {hint}" if hint else msg)
