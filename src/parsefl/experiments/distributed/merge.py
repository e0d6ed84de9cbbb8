"""Distributed runs, the shared parts: the rendezvous, gathering every rank's summary, and
merging the summaries into the simulator's ``results.json`` and ``metrics.csv``."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.distributed as dist

from parsefl.config import RunConfig
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import Experiment
from parsefl.experiments.run.checkpoint import fingerprint
from parsefl.experiments.run.record_schema import check_record
from parsefl.experiments.run.results import merged_results, publish_results
from parsefl.experiments.run.roster import agent_count
from parsefl.experiments.run.rundir import write_json
from parsefl.security.manifest import MAX_MANIFEST, Signer, seal, unseal

log = logging.getLogger(__name__)

STARTUP_S = 120.0  # how long processes wait for each other to start (rendezvous, resume)
RUN_TOKEN = "PARSEFL_RUN_TOKEN"  # environment: the run's namespace in the rendezvous store


def connect(rank: int, world: int, timeout_s: float) -> dist.Store:
    """Rendezvous from torchrun's environment, start gloo, return a store for our own keys.

    Processes start seconds apart (imports, data), so the rendezvous gets at least
    ``STARTUP_S``; gloo uses the same value as its own operation timeout, a backstop only:
    exchanges never post a receive that the deadline-checked announcement did not promise."""
    timeout = timedelta(seconds=max(timeout_s, STARTUP_S))
    store, rank, world = next(dist.rendezvous("env://", rank, world, timeout=timeout))
    # Every key lives under the run's random namespace (``parsefl launch`` makes one per
    # launch; on several machines, export the same PARSEFL_RUN_TOKEN on each): no other run,
    # and no process that was not told it, writes where this run reads by accident.
    token = os.environ.get(RUN_TOKEN, "")
    dist.init_process_group("gloo", store=dist.PrefixStore(f"{token}/gloo", store), rank=rank,
                            world_size=world, timeout=timeout)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"parsefl/{token}/{restart}", store)


@dataclass(frozen=True)
class RunParts:
    """What every rank's summary of one run must fit: the run fingerprint, its length, the
    number of processes, the rank hosting each agent and the placement that put it there;
    ``ids``: the keys that verify the summaries' signed manifests (None: hashes only, and the
    merge is not authenticated)."""

    run: str
    rounds: int
    world: int
    owner: list[int]
    ids: Any = None
    placement: str = "block"

    @classmethod
    def of(cls, cfg: RunConfig, placement_name: str, world: int, ids: Any = None) -> RunParts:
        from parsefl.experiments.distributed.placing import placement

        name, owner, _ = placement(cfg, placement_name, world)
        return cls(fingerprint(cfg), cfg.rounds, world, owner, ids, name)

    def agents(self, rank: int) -> list[int]:
        return [i for i, r in enumerate(self.owner) if r == rank]

    def meta(self, rank: int) -> dict[str, Any]:
        """The summary manifest's ``meta`` for ``rank``."""
        return {"kind": "summary", "run": self.run, "rank": rank, "world_size": self.world,
                "placement": self.placement, "agents": self.agents(rank)}

    def check(self, summary: Any, rank: int, where: str, field: str) -> dict[str, Any]:
        """``summary`` bounded and fitted to this run (:func:`check_record`)."""
        check_record(summary, where, field, agents=self.agents(rank), n_agents=len(self.owner),
                     rounds=self.rounds, summary=True)
        if summary["rank"] != rank or summary["world_size"] != self.world:
            raise ConfigError(field, f"{where} claims rank {summary['rank']} of "
                              f"{summary['world_size']}, expected rank {rank} of {self.world}")
        if any(int(p) >= self.world or int(p) == rank for p in summary["lost"]):
            raise ConfigError(field, f"{where} reports ranks lost that are not its peers")
        return summary


def summary_path(out: Path, rank: int) -> Path:
    return out / "logs" / f"summary_rank_{rank}.json"


def write_summary(out: Path, summary: dict[str, Any], parts: RunParts,
                  signer: Signer | None) -> None:
    """A rank's summary file, then its manifest (signed with keys), written last."""
    path = summary_path(out, summary["rank"])
    write_json(path, summary)
    seal(path.parent, f"manifest_{path.name}", [path.name], parts.meta(summary["rank"]), signer)


def read_summary(out: Path, rank: int, parts: RunParts, field: str) -> tuple[dict, bool]:
    """Rank ``rank``'s summary file, verified by its manifest before it is read (signed by
    one of the rank's agents when ``parts.ids``), then bounded and fitted to the run; and
    whether a signature covered it. Any mismatch: :class:`ConfigError` naming the file."""
    from parsefl.runtime.wire import WireError, loads_bounded

    path = summary_path(out, rank)
    sealed = unseal(path.parent, f"manifest_{path.name}", parts.meta(rank), field,
                    ids=parts.ids, signers=parts.agents(rank), require=[path.name])
    try:
        summary = loads_bounded(path.read_bytes())
    except (OSError, WireError) as err:
        raise ConfigError(field, f"{path} is not a parsefl summary ({err})") from None
    return parts.check(summary, rank, str(path), field), sealed.signer is not None


def gather(store: dist.Store, own: dict, timeout_s: float, out: Path, parts: RunParts,
           verify: Callable[[int, bytes], dict | None] | None = None
           ) -> tuple[dict[int, dict], dict[int, str]]:
    """Every rank's summary that arrives, verified, before the deadline; and why each rank
    that did not was refused. Stops waiting early for ranks that some survivor reported lost
    (a killed process never publishes).

    The store only says *that* rank k has finished: anyone who reaches it could write there.
    The summary itself is read from ``out/logs/summary_rank_k.json`` (the run folder: one
    machine, or a shared file system) through its manifest (:func:`read_summary`), else taken
    from the store only if ``verify`` accepts its signature (``verify(k, raw) -> summary or
    None``). A rank whose summary does not verify is retried until the deadline (a forged
    ``summary/k`` key must not hide the real one that follows)."""
    got, deadline, refused = {own["rank"]: own}, time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        for k in set(range(parts.world)) - set(got):
            if store.check([f"summary/{k}"]):
                try:
                    got[k] = _summary(k, out, store, parts, verify)
                    refused.pop(k, None)
                except ConfigError as err:
                    refused[k] = str(err)
        lost = {int(p) for s in got.values() for p in s["lost"]}
        if not set(range(parts.world)) - set(got) - lost:
            break
        time.sleep(0.05)
    for k, why in refused.items():
        log.warning("rank %d's summary was refused: %s", k, why)
    return got, refused


def _summary(rank: int, out: Path, store: dist.Store, parts: RunParts,
             verify: Callable[[int, bytes], dict | None] | None) -> dict:
    if summary_path(out, rank).is_file():
        return read_summary(out, rank, parts, "summary")[0]
    summary = verify(rank, store.get(f"summary/{rank}")) if verify is not None else None
    if summary is None:
        raise ConfigError("summary", f"rank {rank}'s summary is neither in {out / 'logs'} nor "
                          "signed in the store (copy the logs/summary_rank_*.json files and "
                          "their manifests into one folder and run `parsefl merge`)")
    return parts.check(summary, rank, f"rank {rank}'s summary in the store", "summary")


def finish(cfg: RunConfig, exp: Experiment, summaries: Mapping[int, dict], out: Path,
           parts: RunParts, wall: float, placement: str, *, signed: Collection[int] = (),
           refused: Mapping[int, str] | None = None, signer: Signer | None = None
           ) -> dict[str, Any]:
    """Merge the ranks' records into the simulator's metrics.csv and results.json (plus a
    ``distributed`` section: placement, missing agents, lost peers, bytes on the wire, and
    whether the run is whole). ``signed``: the ranks whose summary a signature covered;
    ``refused``: why the summaries that failed verification were left out."""
    results = merged_results(cfg, exp, summaries, out, wall)
    world = parts.world
    missing = sorted(set(range(world)) - set(summaries))
    wire = sum((Counter(s["wire"]) for s in summaries.values()), Counter())
    first = summaries[min(summaries)]
    lost = {str(k): s["lost"] for k, s in sorted(summaries.items()) if s["lost"]}
    results["distributed"] = {
        "world_size": world, "placement": placement,
        # share of round 0's physical edges whose ends sit in different processes
        "cross_edge_share": first.get("cross_edge_share"),
        "backend": first.get("backend", "reference"),
        "missing_ranks": missing,
        "refused_summaries": {str(k): why for k, why in sorted((refused or {}).items())},
        "missing_agents": [i for i in range(len(exp.n_train)) if i not in
                           {row["id"] for row in results["agents"]}],
        "lost_peers": lost,
        "rejected_messages": wire.pop("rejected", 0),
        "wire_bytes": dict(wire),
        "resumed_from_round": first["resumed_from"],
        "transport": first.get("transport", "gloo"),
        # Every rank's summary is here, its manifest signed by one of its agents and verified
        # against the keys, and came from a process that signed and verified every frame.
        "authenticated": not missing and set(summaries) <= set(signed)
        and all(s.get("authenticated", False) for s in summaries.values()),
        "verified_with": parts.ids.folder.as_posix() if parts.ids is not None else None,
        # gRPC with mutual TLS; gloo sends plaintext (signatures: integrity, not secrecy).
        "encrypted": all(s.get("encrypted", False) for s in summaries.values()),
        "insecure": any(s.get("insecure", False) for s in summaries.values()),
    }
    if missing or lost:  # never a whole table: plots and sweeps leave it out
        results["complete"] = False
        results["partial"] = {"missing_ranks": missing, "lost_peers": lost}
    publish_results(out, results, parts.run, signer)
    return results


def merge_run(folder: str | Path, keys: str | Path | None = None) -> dict[str, Any]:
    """``parsefl merge RUN_DIR``: rebuild ``results.json`` and ``metrics.csv`` from the
    ``logs/summary_rank_*.json`` files in ``folder`` (e.g. copied there from every machine of a
    run without a shared folder, or after rank 0 died). Every summary is verified by its
    manifest before it is read (and its signature, with ``keys``: the run's keys folder, by
    default ``RUN_DIR/keys`` when the launch made one); one that fails is refused in one
    line naming it. Ranks whose file is absent are listed as missing, as rank 0 would."""
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment
    from parsefl.runtime.wire import WireError, loads_bounded
    from parsefl.security import Identities

    out = Path(folder)
    # a summary whose manifest is there without it was deleted: read_summary refuses it
    files = sorted({out / "logs" / p.name.removeprefix("manifest_")
                    for p in (out / "logs").glob("manifest_summary_rank_*.json")}
                   | set((out / "logs").glob("summary_rank_*.json")))
    if not files or not (out / "config.yaml").is_file():
        raise ConfigError("RUN_DIR", f"{out} has no config.yaml or logs/summary_rank_*.json")
    cfg = load_config(out / "config.yaml")
    if keys is None and (out / "keys" / "peers.json").is_file():
        keys = out / "keys"
    ids = Identities(keys) if keys is not None else None
    try:  # how many processes and how they were placed: a manifest (read_summary checks it)
        first = next(p for p in (out / "logs").glob("manifest_summary_rank_*.json"))
        if first.stat().st_size > MAX_MANIFEST:
            raise ValueError(f"{first.name} is larger than {MAX_MANIFEST} bytes")
        head = loads_bounded(first.read_bytes())
        world, placed = head["meta"]["world_size"], head["meta"]["placement"]
        if type(world) is not int or not 1 <= world <= agent_count(cfg) \
                or not isinstance(placed, str):
            raise ValueError(f"world size {world!r}, placement {placed!r}")
        parts = RunParts.of(cfg, placed, world, ids)
    except (OSError, WireError, KeyError, TypeError, ValueError, AttributeError,
            StopIteration) as err:
        raise ConfigError("RUN_DIR", f"the summary manifests in {out / 'logs'} do not describe "
                          f"a run of {out / 'config.yaml'} ({type(err).__name__}: {err})"
                          ) from None
    summaries, signed = {}, set()
    for path in files:
        rank = path.stem.removeprefix("summary_rank_")
        if not rank.isdigit() or int(rank) >= world:
            raise ConfigError("RUN_DIR", f"{path} is not one of the run's {world} ranks")
        summaries[int(rank)], ok = read_summary(out, int(rank), parts, "RUN_DIR")
        if ok:
            signed.add(int(rank))
    if ids is None and any(s.get("authenticated") for s in summaries.values()):
        log.warning("no keys to verify the summaries' signatures (--keys DIR): the merged "
                    "result is not authenticated")
    try:
        return finish(cfg, build_experiment(cfg, []), summaries, out, parts,
                      max(float(s.get("wall_s", 0.0)) for s in summaries.values()),
                      placed, signed=signed)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise ConfigError("RUN_DIR", f"the summaries in {out / 'logs'} do not fit this run "
                          f"({type(err).__name__}: {err})") from None
