"""Shared fixtures: tiny agents built by hand so that exchanged values can be computed exactly;
and a check after every test that it left every registry as it found it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

import parsefl.components  # noqa: F401  (fills every registry: a test's first import adds none)
from parsefl.config import LossConfig, TrainConfig
from parsefl.model import ModelSpec, SlicedModel
from parsefl.pid import PID_ESTIMATORS
from parsefl.registry import ALL
from parsefl.runtime import Agent

REGISTRIES = {**ALL, "pid": PID_ESTIMATORS}

INPUT = {"a": (4,), "b": (5,)}


def make_agent(
    i: int, modalities: Sequence[str], hidden: Sequence[int] = (6,), dim: int = 6, n: int = 8
) -> Agent:
    spec = ModelSpec(n_classes=3, dim=dim, encoder_params={"hidden": list(hidden)})
    model = SlicedModel(modalities, INPUT, spec)
    model.reset_components(0)
    gen = torch.Generator().manual_seed(i)
    x = {m: torch.randn(n, *INPUT[m], generator=gen) for m in modalities}
    y = torch.arange(n) % 3
    return Agent(i, model, x, y, TrainConfig(batch_size=4), LossConfig(), 0)


@pytest.fixture
def agent_factory():
    return make_agent


def registry_entries() -> dict[str, set[str]]:
    return {kind: set(registry.names()) for kind, registry in REGISTRIES.items()}


def leftovers(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, list[str]]:
    """Entries in ``after`` that were not in ``before``, per registry kind."""
    return {kind: sorted(after[kind] - before[kind]) for kind in after
            if after[kind] - before[kind]}


@pytest.fixture
def registries_restored():
    """For a test whose code registers entries it does not name (a plugin): every entry added
    during the test is removed after it."""
    before = registry_entries()
    yield
    for kind, names in leftovers(before, registry_entries()).items():
        for name in names:
            REGISTRIES[kind].unregister(name)


AT_START = registry_entries()  # before any test module is collected (and may register at import)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """What no per-test check sees: an entry registered when a test module was imported."""
    left = leftovers(AT_START, registry_entries())
    if left:
        print(f"\nregistry entries left behind by the tests: {left} (use Registry.registered)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _registries_left_as_found():
    """A test that registers a component removes it again (``Registry.registered``), so that
    no other test runs against its entry."""
    before = registry_entries()
    yield
    left = leftovers(before, registry_entries())
    assert not left, f"the test left registry entries behind: {left} (use Registry.registered)"


# Modules whose module-scoped fixtures are expensive (runs, launches, downloads): under
# pytest-xdist (``--dist loadgroup``, pyproject.toml) each stays on one worker, so that its
# fixtures are built once; every other test is spread one by one.
ONE_WORKER = {"test_distributed", "test_experiment", "test_hostile_artifacts", "test_plots",
              "test_resume", "test_store_trust", "test_pretrained", "test_pid_data",
              "test_data_hapt", "test_data_eog", "test_data_basic_motions", "test_data_mfeat",
              "test_data_describe", "test_benchmarks_gpu", "test_audit", "test_adjacency",
              "test_screening"}


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest's hook signature
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in ONE_WORKER:
            item.add_marker(pytest.mark.xdist_group(module))
