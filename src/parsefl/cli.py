"""Command-line interface: parses arguments and delegates, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

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


def _plugins(plugins: list[str] | None) -> None:
    """Import the user's plugins and the installed ``parsefl.plugins`` entry points."""
    from parsefl.plugins import load_plugins

    load_plugins(plugins or [])


DataOpt = Annotated[
    str | None, typer.Option("--data", help="dataset name (parsefl list dataset) or npz:PATH")
]


def _overrides(override: list[str] | None, data: str | None = None) -> list[str]:
    """The -o list, with --data last (it wins); JSON-quoted so the value is never read as YAML."""
    import json

    return [*(override or []), *([f"data.name={json.dumps(data)}"] if data else [])]


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
    from parsefl.experiments.rundir import default_run_dir
    from parsefl.reporting import print_results, progress_callback

    if resume and out is None:
        raise ConfigError("--resume", "needs --out, the folder of the run to continue")
    _plugins(plugin)
    cfg = load_config(config, _overrides(override, data), method)
    out_dir = out or default_run_dir(cfg.method, dataset_slug(cfg.data.name), cfg.seed)
    console.print(f"[bold]{cfg.method}[/] on [bold]{cfg.data.name}[/], "
                  f"{cfg.topology.name} graph, {cfg.rounds} rounds -> {out_dir}")
    from parsefl.experiments.run import run_experiment

    try:
        with progress_callback(console, cfg.rounds) as on_round:
            results = run_experiment(cfg, out_dir, on_round, resume=resume)
    except KeyboardInterrupt:
        from parsefl.experiments.interrupt import run_interrupted

        raise run_interrupted(out_dir) from None
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
    from parsefl.experiments.pretrain import pretrain as run_pretrain

    cfg = load_config(config, override or [])
    out = Path(str(out).replace("{seed}", str(cfg.seed)))
    for m, info in run_pretrain(cfg, out, epochs).items():
        console.print(f"{m}: {info['samples']} public samples, train accuracy "
                      f"{info['train_accuracy']:.3f}, test {info['test_accuracy']:.3f}")
    console.print(f"Trunks written to {out}/ (use -o model.encoder.pretrained={out} "
                  f"-o data.public={cfg.data.public}, and model.encoder.freeze=true to freeze)")


JobsOpt = Annotated[int, typer.Option(help="parallel processes")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="redo finished runs whose config differs (default: refuse)")]


@app.command()
def launch(
    config: ConfigArg = None,
    nproc: Annotated[int, typer.Option("--nproc", help="processes on this machine")] = 2,
    method: Annotated[str | None, typer.Option(help="sharing strategy")] = None,
    override: OverrideOpt = None,
    out: Annotated[Path | None, typer.Option(help="run folder")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue from the latest checkpoint in --out")
    ] = False,
    plugin: PluginOpt = None,
    data: DataOpt = None,
    keys: Annotated[Path | None, typer.Option(
        help="keys folder (parsefl keys init): sign and verify every wire message")] = None,
    transport: Annotated[str, typer.Option(
        help="gloo (torch.distributed) or grpc (mutual TLS, peer to peer)")] = "gloo",
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="grpc without TLS: plaintext, unauthenticated (recorded)")] = False,
) -> None:
    """Run one experiment as N processes on this machine (gloo, or gRPC with mutual TLS)."""
    from parsefl.experiments.launcher import launch as run_launch
    from parsefl.reporting import print_results

    if insecure:
        console.print("[bold red]warning:[/] --insecure: plaintext, unauthenticated links")
    results = run_launch(config, _overrides(override, data), nproc, out, resume, method=method,
                         plugins=plugin or [], keys=keys, transport=transport,
                         insecure=insecure)
    print_results(console, results)


@app.command()
def merge(run_dir: Annotated[Path, typer.Argument(help="a distributed run folder")]) -> None:
    """Rebuild results.json and metrics.csv of a distributed run from its per-process
    summaries (logs/summary_rank_*.json, e.g. gathered from several machines)."""
    from parsefl.experiments.merge import merge_run
    from parsefl.reporting import print_results

    print_results(console, merge_run(run_dir))
    console.print(f"Results written to {run_dir}/results.json")


keys_app = typer.Typer(help="Identities for distributed runs: a CA, agent keys, a peers file.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init(
    folder: Annotated[Path, typer.Argument(help="new keys folder")],
    agents: Annotated[int, typer.Option("--agents", help="number of agents")],
    address: Annotated[list[str] | None, typer.Option(
        help="ID=HOST:PORT of an agent's process, for the peers file (repeatable)")] = None,
) -> None:
    """Create a network CA, an ECDSA P-256 key pair and certificate per agent, and peers.json."""
    from parsefl.errors import ConfigError
    from parsefl.security import init_keys

    addresses = {}
    for item in address or []:
        ident, _, where = item.partition("=")
        if not ident.isdigit() or not where:
            raise ConfigError("--address", f"expected ID=HOST:PORT, got {item!r}")
        addresses[int(ident)] = where
    peers = init_keys(folder, agents, addresses)
    console.print(f"CA, {agents} agent keys and certificates in {folder}; peers file {peers}. "
                  f"Give each machine ca.pem, certs/, peers.json and only its own agents' "
                  f"private/agent_NNNN.key; keep ca.key elsewhere.")


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
    from parsefl.experiments.compare import compare_sweep
    from parsefl.experiments.sweep import parse_seeds, resolve_methods

    sweep = compare_sweep(config, resolve_methods(methods), parse_seeds(seeds),
                          _overrides(override, data))
    _run_sweep(sweep, out, jobs, overwrite)
    console.print(f"Summary written to {out}/summary.json and {out}/summary.md")


def _run_sweep(spec, out: Path, jobs: int, overwrite: bool) -> None:
    """Run a sweep with a progress bar over runs, then print its summary table."""
    from parsefl.experiments.compare import run_and_summarize
    from parsefl.experiments.divergence import is_diverged
    from parsefl.reporting import print_summary, sweep_progress

    diverged: list[str] = []

    def note(run, result, cached) -> None:
        if is_diverged(result):
            diverged.append(f"{run.method} seed {run.seed} (round {result['diverged_round']})")

    try:
        with sweep_progress(console, len(spec.specs())) as on_done:
            summary = run_and_summarize(spec, out, jobs,
                                        lambda *a: (note(*a), on_done(*a)), overwrite)
    except KeyboardInterrupt:
        from parsefl.experiments.interrupt import sweep_interrupted

        raise sweep_interrupted(out, [s.run_id for s in spec.specs()]) from None
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
    from parsefl.experiments.compare import load_sweep

    spec = load_sweep(sweep_file, _overrides(override, data))
    out = out or Path("runs") / sweep_file.stem
    _run_sweep(spec, out, jobs, overwrite)
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


@app.command()
def pid(
    dataset: Annotated[str, typer.Argument(help="dataset name or npz:PATH")],
    modalities: Annotated[str, typer.Option(help="two modalities, e.g. fou,pix")],
    k: Annotated[int | None, typer.Option(help="k-means clusters per modality (default: rule)")]
    = None,
    seed: Annotated[int, typer.Option(help="dataset and clustering seed")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Partial information decomposition (bits) of two modalities about the label."""
    import json

    from parsefl.pid import dataset_pid

    result = dataset_pid(dataset, modalities, seed=seed, k=k)
    if json_out:
        print(json.dumps({key: result[key] for key in ("redundancy", "unique", "synergy")}))
        return
    a, b = result["unique"]
    table = Table(title=f"PID of {dataset} ({a}, {b}) about the label, in bits "
                        f"(n = {result['n']}, k = {result['k'][a]}/{result['k'][b]})")
    table.add_column("term")
    table.add_column("bits", justify="right")
    for term, value in (("redundancy", result["redundancy"]), (f"unique {a}", result["unique"][a]),
                        (f"unique {b}", result["unique"][b]), ("synergy", result["synergy"])):
        table.add_row(term, f"{value:.3f}")
    console.print(table)


@app.command()
def probe(
    run_dir: Annotated[Path, typer.Argument(help="a finished run on synthetic_pid data")],
    agent: Annotated[int, typer.Option(help="agent id (a multimodal one shows all slices)")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    plugin: PluginOpt = None,
) -> None:
    """Linear probes of an agent's r/u/s slices for each latent bit, and the slices' PID."""
    _plugins(plugin)
    import json

    from parsefl.experiments.probe import TARGETS, probe_run

    result = probe_run(run_dir, agent)
    if json_out:
        print(json.dumps(result))
        return
    table = Table(title=f"{result['title']}: linear-probe accuracy (5-fold, test split)")
    table.add_column("slice")
    for t in TARGETS:
        table.add_column(t, justify="right")
    for kind, row in result["probe_accuracy"].items():
        table.add_row(kind, *(f"{row[t]:.3f}" for t in TARGETS))
    console.print(table)
    for kind, p in result["slice_pid"].items():
        u = ", ".join(f"U[{m}] {v:.3f}" for m, v in p["unique"].items())
        console.print(f"PID of the {kind} slices about y: R {p['redundancy']:.3f}, {u}, "
                      f"S {p['synergy']:.3f} bits")


data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets and partitions.")
app.add_typer(data_app, name="data")


@data_app.command("describe")
def data_describe(
    dataset: Annotated[str | None, typer.Argument(help="dataset name or npz:PATH")] = None,
    config: Annotated[Path | None, typer.Option(
        help="preset for mix/partition (default: the dataset's own, else quickstart)")] = None,
    override: OverrideOpt = None,
    plot: Annotated[Path | None, typer.Option(help="also save a bar chart (.png/.svg)")] = None,
    plugin: PluginOpt = None,
    data: DataOpt = None,
) -> None:
    """Per agent: modalities, sample count and class histogram of a partition."""
    _plugins(plugin)
    from parsefl.config import PRESETS, load_config
    from parsefl.data import describe_partition, load_dataset, plot_partition, render_table
    from parsefl.errors import ConfigError
    from parsefl.experiments.build import agent_partition
    from parsefl.registry import DATASETS

    if not (dataset or data):
        raise ConfigError("DATASET", "missing; give a dataset name or npz:PATH "
                          "(e.g. parsefl data describe mfeat; names: parsefl list dataset)")
    name = data or dataset
    # A dataset with its own preset (hapt: 30 natural agents) is described with that preset.
    own = PRESETS / f"{name}.yaml"
    if config is None and name in DATASETS and own.is_file():
        config = own
    cfg = load_config(config, _overrides(override, name))
    ds = load_dataset(cfg.data.name, cfg.seed, cfg.data.params)
    groups, parts = agent_partition(cfg, ds)
    rows = describe_partition(ds, groups, parts)
    console.print(render_table(rows, ds.class_names))
    if plot:
        plot_partition(rows, ds.class_names, plot)
        console.print(f"Plot written to {plot}")


@app.command("list")
def list_(
    kind: Annotated[str, typer.Argument(help="registry kind, or 'all'")] = "all",
    plugin: PluginOpt = None,
) -> None:
    """List the registered names of a kind (sharing, topology, overlay, dataset, ...)."""
    _plugins(plugin)
    import parsefl.components  # noqa: F401
    from parsefl.errors import ConfigError
    from parsefl.pid import PID_ESTIMATORS
    from parsefl.registry import ALL

    kinds = {**ALL, "pid": PID_ESTIMATORS}
    if kind != "all" and kind not in kinds:
        raise ConfigError("KIND", f"unknown kind {kind!r}; choose one of: all, {', '.join(kinds)}")
    for name in kinds if kind == "all" else [kind]:
        table = Table(title=name, title_justify="left", show_header=False, box=None)
        for entry, text in kinds[name].describe().items():
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


if __name__ == "__main__":
    main()
