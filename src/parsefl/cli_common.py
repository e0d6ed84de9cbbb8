"""What every command module of the CLI shares: the app, the console, option types and the
two helpers that turn options into config overrides and loaded plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    help="Multimodal decentralized federated learning: PARSE and its baselines.",
)
console = Console()

ConfigArg = Annotated[
    Path | None, typer.Argument(help="YAML preset (default: the quickstart preset)")
]
OverrideOpt = Annotated[
    list[str] | None, typer.Option("-o", "--override", help="key=value, e.g. -o rounds=10")
]
PluginOpt = Annotated[list[str] | None, typer.Option(
    "--plugin", help="a .py file or module registering your own components (repeatable)")]


def _plugins(plugins: list[str] | None) -> list[str]:
    """Import the user's plugins and the installed ``parsefl.plugins`` entry points; their
    names (empty: only parsefl's own components are registered)."""
    from parsefl.plugins import load_plugins

    return load_plugins(plugins or [])


DataOpt = Annotated[
    str | None, typer.Option("--data", help="dataset name (parsefl list dataset) or npz:PATH")
]


def _overrides(override: list[str] | None, data: str | None = None) -> list[str]:
    """The -o list, with --data last (it wins); JSON-quoted so the value is never read as YAML."""
    import json

    return [*(override or []), *([f"data.name={json.dumps(data)}"] if data else [])]


def config_argv(command: str, config: Path | None, method: str | None = None,
                override: list[str] | None = None, data: str | None = None,
                plugin: list[str] | None = None) -> list[str]:
    """``parsefl COMMAND`` with the arguments that rebuild its config, as a user types them
    (the command an interrupt prints to continue)."""
    return ["parsefl", command, *([str(config)] if config is not None else []),
            *(["--method", method] if method else []),
            *(arg for o in override or [] for arg in ("-o", o)),
            *(["--data", data] if data else []),
            *(arg for p in plugin or [] for arg in ("--plugin", p))]


JobsOpt = Annotated[int, typer.Option(help="parallel processes")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="redo finished runs whose config differs (default: refuse)")]
