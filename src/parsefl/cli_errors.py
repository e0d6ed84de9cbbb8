"""Usage errors of the command line as one line with the valid choices, whatever typer/click
version the install resolved.

typer up to 0.28 raises ``click`` exceptions; typer 0.29 vendors its own copy (``typer._click``)
and no longer installs click at all. Both expose the same duck-typed surface (``format_message``,
``exit_code``, ``ctx``), so we read that surface and never import click.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from parsefl.errors import Interrupted, ParseflError


def exit_for(err: BaseException) -> None:
    """Print one line and exit for a known error: a ParseflError (exit 2, or its own
    ``exit_code``), an interrupt (130), a usage error (its code; a bare group prints its
    help). Returns for anything else, which is a bug and keeps its traceback."""
    if isinstance(err, Interrupted):
        fail(str(err), 130)
    if isinstance(err, ParseflError):
        fail(f"error: {err}", getattr(err, "exit_code", 2))
    if isinstance(err, KeyboardInterrupt) or type(err).__name__ == "Abort":
        fail("interrupted", 130)
    usage = usage_error(err)
    if usage is None:
        return
    message, code, help_text = usage
    if help_text is not None:
        if help_text.strip():
            print(help_text)
        sys.exit(code)
    fail(f"error: {message}", code)


def fail(line: str, code: int) -> NoReturn:
    """One line on stderr (never wrapped, never read as markup), then exit."""
    print(" ".join(line.split()), file=sys.stderr)
    sys.exit(code)


def usage_error(err: BaseException) -> tuple[str, int, str | None] | None:
    """(one-line message, exit code, help text to show instead or None) for a typer/click
    usage error; None when ``err`` is not one."""
    fmt = getattr(err, "format_message", None)
    code = getattr(err, "exit_code", None)
    if not callable(fmt) or not isinstance(code, int):
        return None
    ctx = getattr(err, "ctx", None)
    if type(err).__name__ == "NoArgsIsHelpError":
        # Its message is the help, rendered when it was raised: typer's rich formatting has
        # printed it already then (and left the message empty); plain click has not.
        return "", code, str(fmt())
    message = " ".join(str(fmt()).split())
    hint = _choices(err, ctx)
    return (f"{message} ({hint})" if hint else message), code, None


def _choices(err: BaseException, ctx: Any) -> str:
    """The valid choices at the point of the error: sub-commands, options or the usage line."""
    if ctx is None:
        return ""
    command = ctx.command
    path = ctx.command_path
    name = type(err).__name__
    if name == "NoSuchOption":
        opts = [o for p in command.get_params(ctx) for o in getattr(p, "opts", [])
                if o.startswith("-")]
        return f"options of '{path}': {', '.join(opts)}"
    if hasattr(command, "list_commands") and "command" in str(err).lower():
        return f"commands of '{path}': {', '.join(command.list_commands(ctx))}"
    usage = " ".join(ctx.get_usage().split())
    usage = usage[len("Usage:"):].strip() if usage.startswith("Usage:") else usage
    return f"usage: {usage}; see '{path} --help'"
