"""Command-line interface: parses arguments and delegates, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from parsefl.cli_common import (
    ConfigArg,
    DataOpt,
    JobsOpt,
    OverrideOpt,
    OverwriteOpt,
    PluginOpt,
    _overrides,
    _plugins,
    app,
    config_argv,
    console,
)


@app.command()
def run(
    config: ConfigArg = None,
    method: Annotated[str | None, typer.Option(help="sharing strategy, see: parsefl list")] = None,
    override: OverrideOpt = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/<name>)")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="continue the run in --out from its last checkpoint")] = False,
    plugin: PluginOpt = None,
    data: DataOpt = None,
) -> None:
    """Run one experiment (default: PARSE on mfeat fou+pix, 12 agents, ring)."""
    from parsefl.config import load_config
    from parsefl.data import dataset_slug
    from parsefl.errors import ConfigError
    from parsefl.experiments.run.rundir import check_out_dir, default_run_dir
    from parsefl.reporting import print_results, progress_callback

    if resume and out is None:
        raise ConfigError("--resume", "needs --out, the folder of the run to continue")
    check_out_dir(out)
    _plugins(plugin)
    cfg = load_config(config, _overrides(override, data), method)
    out_dir = out or default_run_dir(cfg.method, dataset_slug(cfg.data.name), cfg.seed)
    console.print(f"[bold]{cfg.method}[/] on [bold]{cfg.data.name}[/], "
                  f"{cfg.topology.name} graph, {cfg.rounds} rounds -> {out_dir}",
                  soft_wrap=True)  # the folder on one line, to copy
    from parsefl.experiments.run.simulate import run_experiment

    try:
        with progress_callback(console, cfg.rounds) as on_round:
            results = run_experiment(cfg, out_dir, on_round, resume=resume)
    except KeyboardInterrupt:
        from parsefl.experiments.run.interrupt import run_interrupted

        argv = config_argv("run", config, method, override, data, plugin)
        raise run_interrupted(out_dir, argv) from None
    print_results(console, results)
    console.print(f"Results written to {out_dir}/results.json")


@app.command()
def pretrain(
    config: ConfigArg = None,
    override: OverrideOpt = None,
    out: Annotated[Path, typer.Option(help="folder for <modality>.safetensors ({seed}: the "
                                         "seed)")] = Path(
        "pretrained"),
    epochs: Annotated[int, typer.Option(min=1, help="passes over the public split")] = 20,
) -> None:
    """Pretrain per-modality encoder trunks on data.public (a split no agent holds)."""
    from parsefl.config import load_config
    from parsefl.experiments.run.rundir import check_out_dir
    from parsefl.experiments.studies.pretrain import pretrain as run_pretrain

    cfg = load_config(config, override or [])
    out = Path(str(out).replace("{seed}", str(cfg.seed)))
    check_out_dir(out)
    for m, info in run_pretrain(cfg, out, epochs).items():
        console.print(f"{m}: {info['samples']} public samples, train accuracy "
                      f"{info['train_accuracy']:.3f}, test {info['test_accuracy']:.3f}")
    console.print(f"Trunks written to {out}/ (use -o model.encoder.pretrained={out} "
                  f"-o data.public={cfg.data.public}, and model.encoder.freeze=true to freeze)")


@app.command()
def compare(
    config: ConfigArg = None,
    methods: Annotated[str, typer.Option(help="comma-separated, or 'all'")] = "all",
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "0,1,2",
    override: OverrideOpt = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/compare"),
    jobs: JobsOpt = 1,
    plugin: PluginOpt = None,
    data: DataOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Run several methods x seeds on identical partitions, graphs and initialisations."""
    _plugins(plugin)
    from parsefl.experiments.sweeps.compare import compare_sweep
    from parsefl.experiments.sweeps.sweep import parse_seeds, resolve_methods

    sweep = compare_sweep(config, resolve_methods(methods), parse_seeds(seeds),
                          _overrides(override, data))
    argv = [*config_argv("compare", config, None, override, data, plugin), "--methods",
            methods, "--seeds", seeds, "--jobs", str(jobs), *(["--overwrite"] if overwrite else [])]
    _run_sweep(sweep, out, jobs, overwrite, argv)
    console.print(f"Summary written to {out}/summary.json and {out}/summary.md")


def _run_sweep(spec, out: Path, jobs: int, overwrite: bool, argv: list[str]) -> None:
    """Run a sweep with a progress bar over runs, then print its summary table (``argv``: the
    command, which an interrupt prints: it resumes)."""
    from parsefl.experiments.run.divergence import is_diverged
    from parsefl.experiments.run.rundir import check_out_dir
    from parsefl.experiments.sweeps.compare import run_and_summarize
    from parsefl.reporting import print_summary, sweep_progress

    check_out_dir(out)
    diverged: list[str] = []

    def note(run, result, cached) -> None:
        if is_diverged(result):
            diverged.append(f"{run.method} seed {run.seed} (round {result['diverged_round']})")

    try:
        with sweep_progress(console, len(spec.specs())) as on_done:
            summary = run_and_summarize(spec, out, jobs,
                                        lambda *a: (note(*a), on_done(*a)), overwrite)
    except KeyboardInterrupt:
        from parsefl.experiments.run.interrupt import sweep_interrupted

        raise sweep_interrupted(out, [s.run_id for s in spec.specs()],
                                [*argv, "--out", str(out)]) from None
    print_summary(console, summary)
    if diverged:
        console.print(f"[yellow]diverged (left out of the summary):[/] {'; '.join(diverged)}")


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML (grid, methods, seeds)")],
    override: OverrideOpt = None,
    out: Annotated[Path | None, typer.Option(help="output folder")] = None,
    jobs: JobsOpt = 1,
    plugin: PluginOpt = None,
    data: DataOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Run a grid of config values x methods x seeds; finished runs are skipped (resume)."""
    _plugins(plugin)
    from parsefl.experiments.sweeps.compare import load_sweep

    spec = load_sweep(sweep_file, _overrides(override, data))
    out = out or Path("runs") / sweep_file.stem
    argv = [*config_argv("sweep", sweep_file, None, override, data, plugin), "--jobs", str(jobs),
            *(["--overwrite"] if overwrite else [])]
    _run_sweep(spec, out, jobs, overwrite, argv)
    console.print(f"Tables written to {out}/summary.md and {out}/results.csv")


@app.command()
def plot(
    path: Annotated[Path, typer.Argument(help="a run folder or a compare/sweep folder")],
    format: Annotated[str, typer.Option("--format", help="png, svg or png,svg")] = "png",
    tsne_agent: Annotated[
        int | None, typer.Option(help="also a t-SNE of this agent's r/u/s slices (run folder)")
    ] = None,
    plugin: PluginOpt = None,
) -> None:
    """Figures: accuracy per round per group, bytes, gradient cosine, ablation bars, t-SNE."""
    _plugins(plugin)
    from parsefl.plots import plot_dir

    written = plot_dir(path, None, [f.strip() for f in format.split(",")], tsne_agent=tsne_agent)
    for figure in written:
        console.print(str(figure))


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="a run folder or a compare/sweep folder")],
) -> None:
    """A self-contained HTML page: figures, tables and configs."""
    from parsefl.plots import write_report

    console.print(f"Report written to {write_report(path)}")


@app.command("list")
def list_(
    kind: Annotated[str, typer.Argument(help="registry kind, or 'all'")] = "all",
    plugin: PluginOpt = None,
) -> None:
    """List the registered names of a kind (sharing, compressor, placement, ..., or all)."""
    from parsefl.errors import ConfigError
    from parsefl.registry_index import NAMES

    kinds = NAMES  # the built-in names, without importing a component (nor torch)
    if _plugins(plugin):  # a plugin may have registered more: ask the registries themselves
        from parsefl.components import filled

        kinds = {name: registry.describe() for name, registry in filled().items()}
    if kind != "all" and kind not in kinds:
        raise ConfigError("KIND", f"unknown kind {kind!r}; choose one of: all, {', '.join(kinds)}")
    for name in kinds if kind == "all" else [kind]:
        table = Table(title=name, title_justify="left", show_header=False, box=None)
        for entry, text in kinds[name].items():
            table.add_row(f"[bold]{entry}[/]", text)
        console.print(table)


def main() -> None:
    try:
        app(standalone_mode=False)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except (Exception, KeyboardInterrupt) as err:
        from parsefl.cli_errors import exit_for

        exit_for(err)  # one line and exit for every error we know; a bug keeps its traceback
        raise


# Commands defined in their own modules register themselves on `app` when imported.
from parsefl import cli_inspect, cli_network  # noqa: E402, F401

if __name__ == "__main__":
    main()
