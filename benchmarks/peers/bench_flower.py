"""Flower simulation (Ray backend) on the peers workload; run with the Flower venv's Python.

Flower is server-based: the closest it offers to ring gossip is FedAvg over all clients in
every round (each client trains one local epoch from the global model, the server averages
the whole model weighted by sample count). A round is timed in the strategy, from
``configure_train`` (the server sends the global model) to the end of ``aggregate_train``;
federated evaluation is off and the global model is evaluated once, centrally, after the last
round (parsefl's ``eval_every=rounds`` does the same, per agent).

    python bench_flower.py --data DATA.npz --peers 8 --rounds 5 --out result.json
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# Ray workers (which unpickle our model and client code) import this folder's modules too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _torch_common import accuracy, make_model, train_epoch  # noqa: E402
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

# The clients run in Ray actors: they read the run's settings from the environment, which
# the actors inherit from this process.
ENV_DATA, ENV_PEERS = "PEERS_BENCH_DATA", "PEERS_BENCH_N"

client = ClientApp()


@client.train()
def train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)  # one core per actor (client_resources num_cpus)
    pid = int(context.node_config["partition-id"])
    x, y, _, _ = _common.load_cached(os.environ[ENV_DATA])
    idx = _common.iid_parts(len(y), int(os.environ[ENV_PEERS]))[pid]
    model = make_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    rnd = int(msg.content["config"].get("server-round", 0))
    gen = torch.Generator().manual_seed(_common.SEED * 100_003 + pid * 1_000 + rnd)
    loss = train_epoch(model, torch.as_tensor(x[idx]), torch.as_tensor(y[idx]), gen)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                          "metrics": MetricRecord({"train_loss": loss,
                                                   "num-examples": len(idx)})})
    return Message(content=content, reply_to=msg)


class TimedFedAvg(FedAvg):
    """FedAvg that records when each round's training starts and its aggregation ends."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.cpu: list[float] = []  # CPU seconds of the process group at each start, end

    def configure_train(self, server_round, arrays, config, grid):
        self.starts.append(time.perf_counter())
        self.cpu.append(_common.group_cpu_s())
        config["server-round"] = server_round
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):
        out = super().aggregate_train(server_round, replies)
        self.ends.append(time.perf_counter())
        self.cpu.append(_common.group_cpu_s())
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--peers", type=int, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--client-cpus", type=float, default=1.0,
                    help="Ray num_cpus per client actor (actors = cores / this)")
    ap.add_argument("--t0", type=float, help="the parent's time.time() at launch")
    args = ap.parse_args()
    clock = _common.Clock(args.t0)
    os.environ[ENV_DATA] = str(args.data.resolve())
    os.environ[ENV_PEERS] = str(args.peers)
    warnings.filterwarnings("ignore")
    logging.getLogger("flwr").setLevel(logging.WARNING)

    n = args.peers
    strategy = TimedFedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n,
                           min_available_nodes=n)
    final: dict = {}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round != args.rounds:
            return None
        model = make_model()
        model.load_state_dict(arrays.to_torch_state_dict())
        _, _, xt, yt = _common.load_cached(args.data)
        final["accuracy"] = accuracy(model, xt, yt)
        return MetricRecord({"accuracy": final["accuracy"]})

    server = ServerApp()

    @server.main()
    def server_main(grid: Grid, context: Context) -> None:
        strategy.start(grid=grid, initial_arrays=ArrayRecord(make_model().state_dict()),
                       num_rounds=args.rounds, evaluate_fn=evaluate)

    cores = os.cpu_count() or 1
    backend = {"init_args": {"num_cpus": cores, "include_dashboard": False,
                             "logging_level": logging.ERROR, "log_to_driver": False},
               "client_resources": {"num_cpus": args.client_cpus, "num_gpus": 0.0}}
    first = None
    t_run = time.perf_counter()
    run_simulation(server_app=server, client_app=client, num_supernodes=n,
                   backend_config=backend)
    if strategy.starts:
        first = clock.now() - (time.perf_counter() - strategy.starts[0])
    rounds = [e - s for s, e in zip(strategy.starts, strategy.ends, strict=False)]
    result = _common.summarize(rounds, clock.now(), framework="flower", peers=n,
                               first_round_at_s=first, accuracy=final.get("accuracy"),
                               cpu_s=[e - s for s, e in zip(strategy.cpu[::2],
                                                            strategy.cpu[1::2], strict=False)],
                               in_process_s=time.perf_counter() - t_run,
                               note=f"FedAvg over all {n} clients (server-based), Ray, "
                                    f"{args.client_cpus:g} CPU per client actor",
                               versions={"flwr": _version("flwr"), "torch": torch.__version__,
                                         "ray": _version("ray"), "numpy": np.__version__})
    if len(rounds) < args.rounds:
        result["error"] = f"only {len(rounds)} of {args.rounds} rounds completed"
    _common.emit(result, args.out)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
