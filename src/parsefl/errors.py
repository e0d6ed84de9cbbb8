"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations


class ParseflError(Exception):
    """Base class of every error parsefl raises on purpose."""


class ConfigError(ParseflError, ValueError):
    """A configuration value is wrong: the message names the field and what was expected."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class DataError(ParseflError, ValueError):
    """A data file or array is malformed or cannot be obtained: the message names it."""


class Interrupted(ParseflError):
    """The user interrupted (Ctrl-C / SIGINT): the message says what was kept. Exit code 130."""
