"""p2pfl on the peers workload; run with the p2pfl venv's Python.

Peers are p2pfl ``Node`` objects in this one process, connected on a ring
(``TopologyFactory``, ``TopologyType.RING``), each with a ``P2PFLDataset`` built from its slice
of the generated data (no hub) and a Lightning module with the same MLP as the others
(plain SGD, lr 0.01, batch 32, one epoch per round). Every node is in the train set
(``trainset_size = peers``), so each round every peer trains, the train set's models are
gossiped over the ring and every node ends the round with their FedAvg: p2pfl's own
decentralized round, the closest it has to ring D-PSGD. p2pfl evaluates each node on its test
slice at the start of every round (part of its workflow; not switchable).

A round's time is taken by polling every node's round counter (every 20 ms): round k ends when
the last node has finished it. Progress is written to ``--out`` after every round, so a run
that stalls (p2pfl's heartbeat timeouts on an overloaded machine) and is killed by the
parent's timeout still reports the rounds it finished.

    python bench_p2pfl.py --data DATA.npz --peers 8 --rounds 5 --out result.json
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# Ray workers (which unpickle our model and client code) import this folder's modules too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))

import _common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--peers", type=int, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--actors", type=int, default=os.cpu_count() or 1,
                    help="p2pfl's Ray actor pool size (learners train in these; default: cores)")
    ap.add_argument("--protocol", choices=["memory", "grpc"], default="memory",
                    help="p2pfl transport: in-memory (default) or gRPC on localhost")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="give up (and report a stall) after this many seconds of learning")
    ap.add_argument("--t0", type=float, help="the parent's time.time() at launch")
    args = ap.parse_args()
    clock = _common.Clock(args.t0)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    n, rounds = args.peers, args.rounds
    args.data = args.data.resolve()
    args.out = args.out.resolve() if args.out else None
    # p2pfl's logger writes ./logs/run-N.log as soon as it is imported: keep it in ours.
    logs = HERE / "logs" / "p2pfl"
    logs.mkdir(parents=True, exist_ok=True)
    os.chdir(logs)

    import lightning as L
    import torch
    from _torch_common import make_model
    from datasets import Dataset, DatasetDict
    from p2pfl.communication.protocols.protobuff.grpc import GrpcCommunicationProtocol
    from p2pfl.communication.protocols.protobuff.memory import MemoryCommunicationProtocol
    from p2pfl.learning.dataset.p2pfl_dataset import P2PFLDataset
    from p2pfl.learning.frameworks.pytorch.lightning_model import LightningModel
    from p2pfl.management.logger import logger
    from p2pfl.node import Node
    from p2pfl.settings import Settings
    from p2pfl.utils.topologies import TopologyFactory, TopologyType
    from p2pfl.utils.utils import set_standalone_settings, wait_convergence

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Module(L.LightningModule):
        """The shared MLP behind p2pfl's Lightning learner."""

        def __init__(self) -> None:
            super().__init__()
            self.net = make_model()

        def forward(self, x):
            return self.net(x)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=_common.LR)

        def training_step(self, batch, batch_idx):
            loss = torch.nn.functional.cross_entropy(self(batch["x"]), batch["y"])
            self.log("train_loss", loss)
            return loss

        def test_step(self, batch, batch_idx):
            logits = self(batch["x"])
            self.log("test_loss", torch.nn.functional.cross_entropy(logits, batch["y"]))
            self.log("test_acc", (logits.argmax(-1) == batch["y"]).float().mean())

    # p2pfl's standalone (test) settings, as its examples use them.
    set_standalone_settings()
    Settings.training.RAY_ACTOR_POOL_SIZE = args.actors
    Settings.general.LOG_LEVEL = "WARNING"
    Settings.gossip.TTL = max(Settings.gossip.TTL, n)
    logger.set_level("WARNING")

    x, y, xt, yt = _common.load(args.data)
    train = Dataset.from_dict({"x": x, "y": y}).with_format("torch")
    test = Dataset.from_dict({"x": xt, "y": yt}).with_format("torch")
    test_parts = [p for p in _common.iid_parts(len(yt), n)]
    nodes = []
    for i, idx in enumerate(_common.iid_parts(len(y), n)):
        data = P2PFLDataset(DatasetDict({"train": train.select(idx),
                                         "test": test.select(test_parts[i])}))
        data.set_batch_size(_common.BATCH)
        proto = MemoryCommunicationProtocol() if args.protocol == "memory" \
            else GrpcCommunicationProtocol()
        addr = f"node-{i}" if args.protocol == "memory" else "127.0.0.1"
        node = Node(LightningModel(Module()), data, protocol=proto, addr=addr)
        node.start()
        nodes.append(node)

    result: dict = {"framework": "p2pfl", "peers": n, "round_times": [],
                    "note": f"every peer trains, FedAvg of the train set gossiped on the ring; "
                            f"{args.protocol} transport, "
                            f"{args.actors} Ray learner actor(s)",
                    "versions": {"p2pfl": _version("p2pfl"), "torch": torch.__version__,
                                 "lightning": _version("lightning")}}
    try:
        TopologyFactory.connect_nodes(TopologyFactory.generate_matrix(TopologyType.RING, n),
                                      nodes)
        wait_convergence(nodes, n - 1, only_direct=False, wait=120)
        result["converged_at_s"] = clock.now()
        t_start = time.perf_counter()
        nodes[0].set_start_learning(rounds=rounds, epochs=_common.LOCAL_EPOCHS,
                                    trainset_size=n)
        done_at = _watch(nodes, rounds, t_start, args.timeout, result, args.out, clock)
        ends = [t_start] + done_at
        result["round_times"] = [b - a for a, b in zip(ends, ends[1:], strict=False)]
        if len(done_at) < rounds and "failed_nodes" in result:
            result["error"] = (f"failed: {len(done_at)} of {rounds} rounds finished; nodes "
                               f"{result['failed_nodes']} left the workflow early")
        elif len(done_at) < rounds:
            result["error"] = (f"stalled: {len(done_at)} of {rounds} rounds finished after "
                               f"{args.timeout:.0f} s (heartbeat timeouts / lost models)")
        result["accuracy"] = _final_accuracy(logger, nodes, rounds)
    finally:
        t_stop = time.perf_counter()
        for node in nodes:
            threading.Thread(target=node.stop, daemon=True).start()
        time.sleep(0.5)
        result["stop_s"] = time.perf_counter() - t_stop
    final = _common.summarize(result.pop("round_times"), clock.now(), **result)
    _common.emit(final, args.out)
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    finally:
        os._exit(0)  # p2pfl leaves non-daemon threads behind


def _watch(nodes, rounds, t_start, timeout, result, out, clock) -> list[float]:
    """Poll the nodes' workflows; returns when the last node finished each round (a node
    enters its k-th ``RoundFinishedStage`` when it has the aggregated model of round k)."""
    seen = [[None] * (rounds + 1) for _ in nodes]  # seen[i][k]: node i finished round k
    done_at: list[float] = []
    while time.perf_counter() - t_start < timeout:
        now = time.perf_counter()
        for i, node in enumerate(nodes):
            k_done = min(node.learning_workflow.history.count("RoundFinishedStage"), rounds)
            for k in range(1, k_done + 1):
                if seen[i][k] is None:
                    seen[i][k] = now
        while len(done_at) < rounds and all(s[len(done_at) + 1] is not None for s in seen):
            done_at.append(max(s[len(done_at) + 1] for s in seen))
            ends = [t_start] + done_at
            partial = dict(result, round_times=[b - a for a, b in zip(ends, ends[1:],
                                                                      strict=False)])
            _common.emit(_common.summarize(partial.pop("round_times"), clock.now(), **partial),
                         out)
        if len(done_at) == rounds:
            break
        failed = [n.addr for n, s in zip(nodes, seen, strict=True)
                  if n.learning_workflow.finished and s[rounds] is None]
        if failed:
            result["failed_nodes"] = failed
            break
        time.sleep(0.02)
    return done_at


def _final_accuracy(logger, nodes, rounds, wait_s: float = 20.0) -> float | None:
    """Mean over nodes of the last ``test_acc`` each logged (p2pfl evaluates every node on its
    test slice after the last round); None when p2pfl's logger does not have them in time."""
    end = time.perf_counter() + wait_s
    while time.perf_counter() < end:
        if all(n.learning_workflow.finished for n in nodes):
            break
        time.sleep(0.1)
    try:
        accs = [vals[-1][1] for exp in logger.get_global_logs().values()
                for node in exp.values() for metric, vals in node.items()
                if metric.endswith("test_acc") and vals]
    except Exception:  # noqa: BLE001 - the accuracy is a sanity check, not the benchmark
        return None
    return float(sum(accs) / len(accs)) if len(accs) == len(nodes) else None


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
