"""The combination contract: every registered sharing method, aggregator (plus a linear plugin
whose weights depend on which copies arrived), attack, compressor and schedule kind, in cells
of a pairwise covering design generated from the registries, gives the same numbers on the
reference and the vectorized backend; the cells that hold every name at least once also under
``launch --nproc 2`` over every registered transport (gloo, gRPC). A combination that a backend
cannot run must be refused at config time, in one line naming the field. A name added to a
registry joins the matrix without editing this file."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from covering import each_level, pairwise
from safetensors.torch import load_file

from parsefl.config import load_config
from parsefl.config_sections import DynamicsConfig
from parsefl.errors import ConfigError
from parsefl.registry import AGGREGATION, ATTACKS, COMPRESSORS, SHARING, TRANSPORTS
from parsefl.sharing.base import Capability

PLUGIN = Path(__file__).with_name("contract_plugin.py")
BASE = ["data.name=synthetic_pid", "data.params={label: mixed, n_samples: 240}",
        "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=6",
        "model.encoder.params.hidden=[8]", "device=cpu", "diagnostics.gradient_cosine=false",
        "train.local_steps=1", "rounds=3", "eval_every=3", "runtime.checkpoint_every=100",
        # SGD: Adam turns a gradient that is zero but for float noise (sliced_hybrid's s-row
        # biases in unimodal agents: ~1e-9, summed in another order by each backend) into
        # steps of ~1e-4, which no tolerance can tell from a real divergence.
        "train.optimizer=sgd", "train.lr=0.05"]
# Schedule kinds: what changes during a run. Every field of the dynamics section is one (a
# new field fails test_every_schedule_kind_has_a_cell until it gets one), and so is the graph.
SCHEDULES = {
    "static": [],
    "graph": ["topology.name=edge_dropout", "topology.params={p: 0.4}"],
    "modalities": ["dynamics.modalities.events=[{agent: 4, modality: m1, lose: 1, regain: 2}]"],
    "membership": ["dynamics.membership.offline=0.3"],
    "local_steps": ["dynamics.local_steps={min: 1, max: 2}"],
}
CHOCO = "int8+choco"
FACTORS = {
    "method": SHARING.names(),
    "aggregation": [*AGGREGATION.names(), "uniform_arrived"],
    "attack": ["none", *ATTACKS.names()],
    "compressor": [*COMPRESSORS.names(), CHOCO],
    "schedule": list(SCHEDULES),
    # ratio: copies over 1.5x the receiver's own norm are rejected (honest ones too, early
    # on), and linear aggregators take the padded path; norm: copies of norm over 2 are
    # rejected (some components' honest copies), linear ones on the sparse path. The nan
    # attack is rejected too.
    "checks": ["default", "ratio", "norm"],
}
SECTIONS = {"method": ["method"], "aggregation": ["aggregation"], "attack": ["adversary"],
            "compressor": ["communication"], "schedule": ["dynamics", "topology"],
            "checks": ["checks"]}
DEFAULTS = {f: levels[0] if f != "aggregation" else "mean" for f, levels in FACTORS.items()}
DEFAULTS.update(method="parse", attack="none", compressor="none", schedule="static")


def overrides(cell: dict[str, str]) -> list[str]:
    out = [*BASE, f"method={cell['method']}", f"aggregation.name={cell['aggregation']}",
           *SCHEDULES[cell["schedule"]]]
    if cell["attack"] != "none":
        out += [f"adversary.attack={cell['attack']}", "adversary.agents=[1]"]
    if cell["compressor"] == CHOCO:
        out += ["communication.compressor=int8", "communication.error_feedback=true"]
    else:
        out.append(f"communication.compressor={cell['compressor']}")
    out += {"default": [], "ratio": ["checks.max_ratio=1.5"],
            "norm": ["checks.max_norm=2"]}[cell["checks"]]
    return out


def refusal(cell: dict[str, str], backend: str = "auto") -> str | None:
    """The one-line config error of an impossible combination (None: it is valid);
    ``backend``: also what that backend refuses for the whole config."""
    from parsefl.experiments.distributed.placing import refuse_unstackable

    try:
        with _with_plugin():
            refuse_unstackable(load_config(None, [*overrides(cell),
                                                  f"runtime.backend={backend}"]))
    except ConfigError as err:
        return str(err)
    return None


def silent(method: str) -> bool:
    """A method whose agents exchange nothing (local, centralized): how copies would be
    merged, attacked or compressed does not interact with it."""
    strategy = SHARING.get(method)()
    cap = Capability(0, ("m1", "m2"), {"enc.m1": "s", "head_r": "s"})
    return strategy.centralized or not strategy.offered(cap, 0)


@contextmanager
def _with_plugin() -> Iterator[None]:
    """The plugin registered while the block runs (unless a fixture holds it already)."""
    if "uniform_arrived" in AGGREGATION.names():
        yield
        return
    with AGGREGATION.registered("uniform_arrived", _plugin()):
        yield


def _plugin() -> type:
    spec = importlib.util.spec_from_file_location("contract_plugin_class", PLUGIN)
    source = PLUGIN.read_text().rsplit("\nif NAME not in", 1)[0]  # the class alone
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, str(PLUGIN), "exec"), module.__dict__)  # noqa: S102
    return module.UniformOverArrived


def _forbidden(a: str, x: str, b: str, y: str) -> bool:
    """Pairs no cell may hold: refused at config time (tested on their own below), or a
    silent method with anything but the default way of exchanging copies (no interaction:
    a cell spent there would test the other names against nothing)."""
    for f, v, g, w in ((a, x, b, y), (b, y, a, x)):
        if f == "method" and silent(v) and g in ("aggregation", "attack", "compressor",
                                                  "checks"):
            return w != DEFAULTS[g]
    if (a, x, b, y) not in REFUSED:  # the greedy design asks about a pair many times
        REFUSED[a, x, b, y] = refusal({**DEFAULTS, a: x, b: y}, "vectorized")
    return REFUSED[a, x, b, y] is not None


REFUSED: dict[tuple[str, str, str, str], str | None] = {}


def launch_refusal(cell: dict[str, str]) -> str | None:
    """Why ``launch --nproc 2`` refuses the cell at config time (None: it runs it)."""
    from parsefl.experiments.distributed.placing import placement

    try:
        with _with_plugin():
            placement(load_config(None, overrides(cell)), None, 2)
    except ConfigError as err:
        return str(err)
    return None


CELLS = pairwise(FACTORS, _forbidden)
UNLAUNCHABLE = [c for c in CELLS if launch_refusal(c) is not None]
LAUNCHABLE = {f: [v for v in levels if any(c[f] == v for c in CELLS if c not in UNLAUNCHABLE)]
              for f, levels in FACTORS.items()}
LAUNCHED = each_level([c for c in CELLS if c not in UNLAUNCHABLE], LAUNCHABLE)
# The arrived-dependent plugin with copies rejected (the nan attacker's, and big ones), over
# real processes too: where a backend that folded rejections by the mean's rule differed.
REJECTING = {**DEFAULTS, "aggregation": "uniform_arrived", "attack": "nan", "checks": "norm"}
LAUNCHED.append(REJECTING)
CELLS.append(REJECTING)


def _cell_id(cell: dict[str, str]) -> str:
    return "-".join(cell[f] for f in FACTORS)


@pytest.fixture(scope="module")
def plugin():
    with _with_plugin():
        yield


def _simulate(cell: dict[str, str], backend: str, out: Path) -> dict:
    from parsefl.experiments.run.simulate import run_experiment

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_experiment(load_config(None, [*overrides(cell),
                                                 f"runtime.backend={backend}"]), out)
    finally:
        torch.set_num_threads(threads)


def _tolerance(cell: dict[str, str]) -> float:
    """The backends sum in other orders (float32: ~1e-7 apart after a few rounds). Through a
    lossy compressor such a difference can cross a rounding boundary of the quantizer (seen:
    parse, clipped, scale attack, bf16: one bf16 step, 3e-4; parse_distill, fp16, stragglers:
    one fp16 step, 1.2e-4); a real divergence (an aggregator asked for the wrong copies) is
    of the order of the weights themselves."""
    return 1e-5 if cell["compressor"] == "none" else 1e-3


def _same(ours: dict, theirs: dict, ours_dir: Path, theirs_dir: Path, what: str,
          atol: float) -> None:
    """Equal bytes, rejections and rounds, and final weights within ``atol``."""
    assert theirs["communication"]["bytes_total"] == ours["communication"]["bytes_total"], what
    assert theirs.get("rejected_messages", {}) == ours.get("rejected_messages", {}), what
    assert theirs["rounds_completed"] == ours["rounds_completed"], what
    files = sorted((ours_dir / "checkpoints").glob("agent_*.safetensors"))
    assert files, what
    for f in files:
        a, b = load_file(f), load_file(theirs_dir / "checkpoints" / f.name)
        for name, value in a.items():
            assert torch.allclose(value, b[name], atol=atol, equal_nan=True), (what, f.name,
                                                                               name)


def test_the_design_covers_every_name_and_stays_small():
    assert len(CELLS) <= 140 and len(LAUNCHED) <= len(FACTORS["method"]) + 3
    for f, levels in FACTORS.items():  # every name launched, or every cell of it refused
        assert {c[f] for c in LAUNCHED} | {c[f] for c in UNLAUNCHABLE
                                           if c[f] not in LAUNCHABLE[f]} == set(levels), f


@pytest.mark.parametrize("cell", UNLAUNCHABLE, ids=_cell_id)
def test_what_launch_cannot_run_is_refused_in_one_line(cell):
    why = launch_refusal(cell)
    assert why is not None and "\n" not in why, why
    assert why.split(": ")[0] in ("--nproc", "adversary.attack"), why  # names the field


def test_every_schedule_kind_has_a_cell():
    kinds = set(DynamicsConfig.model_fields) - {"seed"}
    assert kinds <= set(SCHEDULES), f"a dynamics field without a contract cell: {kinds}"


@pytest.mark.parametrize("pair", sorted(p for p, why in REFUSED.items() if why), ids=str)
def test_a_refused_pair_is_refused_in_one_line_naming_the_field(pair, plugin, tmp_path):
    a, x, b, y = pair
    cell = {**DEFAULTS, a: x, b: y}
    why = REFUSED[pair]
    sections = {"runtime", *SECTIONS[a], *SECTIONS[b]}  # the config sections the pair sets
    assert "\n" not in why and why.split(": ")[0].split(".")[0] in sections, why
    if refusal(cell) is None:  # refused by the vectorized backend only: auto runs reference
        with pytest.raises(ConfigError, match="runtime.backend"):
            _simulate(cell, "vectorized", tmp_path / "vec")


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_reference_equals_vectorized(cell, plugin, tmp_path):
    ref = _simulate(cell, "reference", tmp_path / "ref")
    try:
        vec = _simulate(cell, "vectorized", tmp_path / "vec")
    except ConfigError as err:  # what only the built agents show (centralized: pooled views)
        assert str(err).startswith("runtime.backend: ") and "\n" not in str(err)
        assert cell["method"] == "centralized", err  # the one kind of agent it refuses here
        return
    _same(ref, vec, tmp_path / "ref", tmp_path / "vec", "vectorized", _tolerance(cell))


@pytest.mark.parametrize("transport", TRANSPORTS.names())  # every registered one
@pytest.mark.parametrize("cell", LAUNCHED, ids=_cell_id)
def test_launch_equals_the_simulator(cell, transport, plugin, tmp_path):
    from parsefl.experiments.distributed.launcher import launch

    ref = _simulate(cell, "reference", tmp_path / "ref")
    dist = launch(None, overrides(cell), nproc=2, out_dir=tmp_path / "dist",
                  wall_timeout_s=120, transport=transport, insecure=transport == "grpc",
                  plugins=[PLUGIN])
    assert dist["distributed"]["transport"] == transport
    _same(ref, dist, tmp_path / "ref", tmp_path / "dist", transport, _tolerance(cell))
