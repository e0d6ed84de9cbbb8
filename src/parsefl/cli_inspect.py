"""Commands that inspect data, runs and slices: pid, probe, audit, data describe (thin: they parse
arguments and delegate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from parsefl.cli_common import (
    DataOpt,
    OverrideOpt,
    PluginOpt,
    _overrides,
    _plugins,
    app,
    console,
)


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

    from parsefl.experiments.studies.probe import TARGETS, probe_run

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


@app.command()
def audit(
    run_dir: Annotated[Path, typer.Argument(help="a finished run folder")],
    shadows: Annotated[int, typer.Option(
        help="shadow runs for the likelihood-ratio attack (LiRA; an even number, run into "
             "RUN_DIR/shadows/ unless already there; 0: none)")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    plugin: PluginOpt = None,
) -> None:
    """Membership inference by a curious neighbour from the components it received: AUC and
    TPR at 1% FPR per component kind, loss threshold and calibrated by the neighbour's own
    model, and with --shadows the likelihood-ratio attack (also written to
    RUN_DIR/audit.json)."""
    _plugins(plugin)
    import json

    from rich.console import Console

    from parsefl.experiments.run.rundir import write_json
    from parsefl.privacy.audit import audit_run
    from parsefl.privacy.shadows import check_count
    from parsefl.reporting import shadow_progress

    check_count(shadows)
    if shadows:
        with shadow_progress(Console(stderr=True) if json_out else console,
                             shadows) as on_shadow:
            result = audit_run(run_dir, shadows, on_shadow)
    else:
        result = audit_run(run_dir)
    write_json(run_dir / "audit.json", result)
    if json_out:
        print(json.dumps(result))
        return
    console.print(_audit_table(result))
    if "shadows" in result:
        console.print(_lira_table(result))


def _audit_table(result: dict) -> Table:
    eps = result["privacy"]
    table = Table(title=f"{result['method']} (seed {result['seed']}, "
                        f"{'no DP' if eps is None else f'epsilon {eps:.2f}'}): loss-threshold "
                        "membership inference by each receiving neighbour")
    for col in ("components", "pairs", "AUC mean", "AUC std", "AUC max", "TPR@1%FPR",
                "cal AUC", "cal TPR"):
        table.add_column(col, justify="left" if col == "components" else "right")
    for kind, row in result["kinds"].items():
        cal = ("-", "-") if "auc_cal_mean" not in row else (
            f"{row['auc_cal_mean']:.3f}", f"{row['tpr_at_1pct_fpr_cal_mean']:.3f}")
        table.add_row(kind, str(row["pairs"]), f"{row['auc_mean']:.3f}",
                      f"{row['auc_std']:.3f}", f"{row['auc_max']:.3f}",
                      f"{row['tpr_at_1pct_fpr_mean']:.3f}", *cal)
    return table


def _lira_table(result: dict) -> Table:
    table = Table(title=f"likelihood-ratio attack ({result['shadows']['count']} shadow runs): "
                        "online (IN and OUT Gaussians) and offline (OUT only)")
    keys = {"LiRA AUC": "auc_lira_mean", "LiRA AUC max": "auc_lira_max",
            "LiRA TPR@1%FPR": "tpr_at_1pct_fpr_lira_mean",
            "offline AUC": "auc_lira_offline_mean",
            "offline TPR@1%FPR": "tpr_at_1pct_fpr_lira_offline_mean"}
    table.add_column("components")
    for col in keys:
        table.add_column(col, justify="right")
    for kind, row in result["kinds"].items():
        table.add_row(kind, *(f"{row[k]:.3f}" for k in keys.values()))
    return table


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
    from parsefl.experiments.run.roster import agent_partition
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
