"""Commands for runs across processes and machines: launch, merge, keys (thin: they parse
arguments and delegate to parsefl.experiments and parsefl.security)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parsefl.cli_common import (
    ConfigArg,
    DataOpt,
    OverrideOpt,
    PluginOpt,
    _overrides,
    app,
    config_argv,
    console,
)


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
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="exit 0 even when a process was lost (results.json marks "
        "the run partial either way)")] = False,
) -> None:
    """Run one experiment as N processes on this machine (gloo, or gRPC with mutual TLS)."""
    from parsefl.errors import Interrupted, PartialRun
    from parsefl.experiments.distributed.launcher import launch as run_launch
    from parsefl.experiments.run.interrupt import launch_interrupted
    from parsefl.experiments.run.rundir import check_out_dir
    from parsefl.reporting import launch_progress

    check_out_dir(out)
    if insecure:
        console.print("[bold red]warning:[/] --insecure: plaintext, unauthenticated links")
    argv = [*config_argv("launch", config, method, override, data, plugin), "--nproc", str(nproc),
            *(["--keys", str(keys)] if keys is not None else []),
            *(["--transport", transport] if transport != "gloo" else []),
            *(["--allow-partial"] if allow_partial else [])]
    try:
        with launch_progress(console, nproc) as watch:
            results = run_launch(config, _overrides(override, data), nproc, out, resume,
                                 method=method, plugins=plugin or [], keys=keys,
                                 transport=transport, insecure=insecure,
                                 allow_partial=allow_partial, on_start=watch.start,
                                 on_round=watch.round)
    except PartialRun as err:
        _print_run(err.results)
        raise
    except Interrupted:
        if watch.out is None:
            raise
        raise launch_interrupted(watch.out, nproc, argv) from None  # with the whole command
    _print_run(results)


def _print_run(results: dict) -> None:
    """The results table; a partial run's says so above and below it, never as the whole."""
    from parsefl.reporting import print_results

    partial = results.get("partial")
    if partial:
        console.print(f"[bold red]PARTIAL RUN[/]: ranks {partial['missing_ranks']} missing, "
                      f"peers lost {partial['lost_peers'] or 'none'}; the table covers only "
                      "the agents that reported")
    print_results(console, results)
    if partial:
        console.print(f"[bold red]PARTIAL RUN[/]: agents "
                      f"{results['distributed']['missing_agents']} have no results")


@app.command()
def merge(run_dir: Annotated[Path, typer.Argument(help="a distributed run folder")],
          keys: Annotated[Path | None, typer.Option(
              help="keys folder that verifies the summaries' signatures (default: RUN_DIR/keys "
                   "when the launch made one)")] = None,
          allow_partial: Annotated[bool, typer.Option(
              "--allow-partial", help="exit 0 even when a rank's summary is missing")] = False
          ) -> None:
    """Rebuild results.json and metrics.csv of a distributed run from its per-process
    summaries (logs/summary_rank_*.json and their manifests, e.g. gathered from several
    machines), each verified before it is read."""
    from parsefl.errors import PartialRun
    from parsefl.experiments.distributed.merge import merge_run

    results = merge_run(run_dir, keys)
    _print_run(results)
    if results.get("partial") and not allow_partial:
        raise PartialRun(results, str(run_dir / "results.json"))
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
    force: Annotated[bool, typer.Option(
        "--force", help="replace the keys already in FOLDER (old files are unlinked)")] = False,
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
    peers = init_keys(folder, agents, addresses, force=force)
    console.print(f"CA, {agents} agent keys and certificates in {folder}; peers file {peers}. "
                  f"Give each machine ca.pem, certs/, peers.json and only its own agents' "
                  f"private/agent_NNNN.key; keep ca.key elsewhere.")
