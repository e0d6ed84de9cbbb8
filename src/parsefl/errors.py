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

    def __reduce__(self) -> tuple:  # picklable: raised in a process pool's worker too
        return (type(self), (self.field, self.problem))


class DataError(ParseflError, ValueError):
    """A data file or array is malformed or cannot be obtained: the message names it."""


class PartialRun(ParseflError):
    """A distributed run lost a process (killed, timed out, refused summary): its results.json
    marks it partial. Exit code 1; ``parsefl launch --allow-partial`` accepts it."""

    exit_code = 1

    def __init__(self, results: dict, where: str) -> None:
        self.results = results
        part = results.get("partial", {})
        lost = sorted({*part.get("missing_ranks", []),
                       *(int(p) for by in part.get("lost_peers", {}).values() for p in by)})
        super().__init__(f"partial run: rank(s) {lost} missing or lost, agents "
                         f"{results.get('distributed', {}).get('missing_agents', [])} have no "
                         f"results; {where} marks it partial (see its distributed section and "
                         "the logs); rerun, or pass --allow-partial to accept it")


class Interrupted(ParseflError):
    """The user interrupted (Ctrl-C / SIGINT): the message says what was kept. Exit code 130."""
