"""Command-line interface: parses arguments and delegates, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from parsefl.errors import ParseflError

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


@app.command()
def run(
    config: ConfigArg = None,
    method: Annotated[str | None, typer.Option(help="sharing strategy, see: parsefl list")] = None,
    override: OverrideOpt = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/<name>)")] = None,
) -> None:
    """Run one experiment (default: PARSE on mfeat fou+pix, 12 agents, ring)."""
    from parsefl.config import load_config
    from parsefl.experiments.rundir import default_run_dir
    from parsefl.reporting import print_results, progress_callback

    cfg = load_config(config, override or [], method)
    out_dir = out or default_run_dir(cfg.method, cfg.data.name, cfg.seed)
    console.print(f"[bold]{cfg.method}[/] on [bold]{cfg.data.name}[/], {sum(cfg.mix.values())} "
                  f"agents, {cfg.topology.name} graph, {cfg.rounds} rounds -> {out_dir}")
    from parsefl.experiments.run import run_experiment

    with progress_callback(console, cfg.rounds) as on_round:
        results = run_experiment(cfg, out_dir, on_round)
    print_results(console, results)
    console.print(f"Results written to {out_dir}/results.json")


@app.command("list")
def list_(kind: Annotated[str, typer.Argument(help="registry kind, or 'all'")] = "all") -> None:
    """List the registered names of a kind (sharing, topology, overlay, dataset, ...)."""
    import parsefl.components  # noqa: F401
    from parsefl.errors import ConfigError
    from parsefl.registry import ALL

    if kind != "all" and kind not in ALL:
        raise ConfigError("KIND", f"unknown kind {kind!r}; choose one of: all, {', '.join(ALL)}")
    for name in ALL if kind == "all" else [kind]:
        table = Table(title=name, title_justify="left", show_header=False, box=None)
        for entry, text in ALL[name].describe().items():
            table.add_row(f"[bold]{entry}[/]", text)
        console.print(table)


def main() -> None:
    try:
        app(standalone_mode=False)
    except ParseflError as err:
        Console(stderr=True).print(f"[red]error:[/] {err}")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        Console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise


if __name__ == "__main__":
    main()
