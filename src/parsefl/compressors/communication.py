"""The ``communication:`` policy of a run: which compressor and period each component kind
uses, and whether CHOCO-SGD error feedback is on. The engine filters each round's plans by the
periods (:meth:`Communication.due_plans`); executors encode what they send and decode what
arrives through it. With the default policy (no compression, every round) nothing changes:
the engine and executors take their uncompressed paths untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from parsefl.compressors.base import (
    CodecError,
    Compressor,
    Spec,
    decode_tensors,
    encode_tensors,
    encoded_spec,
    round_keys,
    row_key,
)
from parsefl.errors import ConfigError
from parsefl.registry import COMPRESSORS

# Component kinds (the name before the dot): PARSE's and the baselines'.
KINDS = ("enc", "enc_s", "head_u", "head_r", "synergy", "trunk", "fusion", "classifier")


@dataclass(frozen=True)
class Rule:
    compressor: Compressor
    period: int = 1


def kind_of(component: str) -> str:
    return component.partition(".")[0]


class Communication:
    """Per component kind: a compressor and a period; ``error_feedback``: CHOCO-SGD with
    consensus step size ``gamma`` (see :mod:`parsefl.compressors.choco`)."""

    def __init__(self, default: Rule, kinds: Mapping[str, Rule] | None = None,
                 error_feedback: bool = False, gamma: float | None = None,
                 seed: int = 0) -> None:
        self.default, self.kinds = default, dict(kinds or {})
        self.error_feedback, self.seed = error_feedback, seed
        self.gamma = None if gamma is None else float(gamma)
        self._base: dict[tuple, Any] = {}
        self._due: tuple[Hashable, dict] | None = None

    @classmethod
    def from_config(cls, cfg: Any, seed: int = 0) -> Communication:
        """From a ``CommunicationConfig``; a bad name, kind or parameter is a ConfigError
        naming its field."""
        default = Rule(_compressor(cfg.compressor, cfg.params, "communication"), cfg.period)
        kinds = {}
        for kind, over in cfg.kinds.items():
            if kind not in KINDS:
                raise ConfigError(f"communication.kinds.{kind}", "unknown component kind; "
                                  f"choose one of: {', '.join(KINDS)}")
            field = f"communication.kinds.{kind}"
            name = over.compressor or cfg.compressor
            params = over.params if over.params is not None else (
                cfg.params if over.compressor in (None, cfg.compressor) else {})
            comp = default.compressor if (name, params) == (cfg.compressor, cfg.params) \
                else _compressor(name, params, field)
            kinds[kind] = Rule(comp, over.period or cfg.period)
        return cls(default, kinds, cfg.error_feedback, cfg.gamma, seed)

    # -- what the run does ------------------------------------------------------------------
    @property
    def plain(self) -> bool:
        """True when copies travel as they are (no compressor, no error feedback)."""
        rules = [self.default, *self.kinds.values()]
        return not self.error_feedback and all(r.compressor.identity for r in rules)

    @property
    def every_round(self) -> bool:
        return all(r.period == 1 for r in [self.default, *self.kinds.values()])

    def rule(self, component: str) -> Rule:
        return self.kinds.get(kind_of(component), self.default)

    def compressor(self, component: str) -> Compressor:
        return self.rule(component).compressor

    def gamma_for(self, component: str) -> float:
        """CHOCO's consensus step size for ``component``: the configured one, else its
        compressor's (``Compressor.gamma``)."""
        return self.gamma if self.gamma is not None else self.compressor(component).gamma

    def due(self, component: str, r: int) -> bool:
        """Whether ``component`` is exchanged in round ``r`` (period k: rounds r % k == 0)."""
        return r % self.rule(component).period == 0

    def due_plans(self, plans: dict, version: Hashable, r: int) -> tuple[dict, Hashable]:
        """Round ``r``'s plans: the components not due this round left out (their holders
        keep their own copies, and nothing is billed for them), and a version that changes
        exactly when the plans or the set of components left out do."""
        if self.every_round:
            return plans, version
        skipped = frozenset(c for p in plans.values() for c in p.paths if not self.due(c, r))
        if not skipped:
            return plans, version
        key = (version, skipped)
        if self._due is None or self._due[0] != key:
            out = {i: dataclasses.replace(
                p, paths={c: v for c, v in p.paths.items() if c not in skipped},
                self_weight={c: v for c, v in p.self_weight.items() if c not in skipped},
                weights={c: v for c, v in p.weights.items() if c not in skipped})
                for i, p in plans.items()}
            self._due = (key, out)
        return self._due[1], key

    # -- encoding ---------------------------------------------------------------------------
    def keys(self, component: str, name: str, senders: tuple[int, ...], r: int) -> torch.Tensor:
        """Row keys ``(len(senders),)`` of one tensor of ``component`` in round ``r``."""
        k = (component, name, senders)
        if k not in self._base:
            self._base[k] = torch.tensor([row_key(self.seed, s, component, name)
                                          for s in senders], dtype=torch.int64)
        return round_keys(self._base[k], r)

    def encode(self, component: str, sender: int, r: int,
               tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One copy as it travels (an identity compressor: the copy itself)."""
        comp = self.compressor(component)
        if comp.identity:
            return dict(tensors)
        keys = {n: int(self.keys(component, n, (sender,), r)[0]) for n in tensors}
        return encode_tensors(comp, tensors, keys)

    def decode(self, component: str, body: Mapping[str, torch.Tensor],
               like: Mapping[str, Spec]) -> dict[str, torch.Tensor]:
        """What arrived as the receiver's tensors (raises ``CodecError``)."""
        return decode_tensors(self.compressor(component), body, like)

    def decode_wire(self, msg: Any, expected: Mapping[tuple[int, str], Mapping]
                    ) -> dict[str, torch.Tensor]:
        """A received message's body decoded against the receiver's expected tensor specs
        (dtype names, shapes) of the component (raises ``CodecError``)."""
        spec = expected.get((msg.dst, msg.component))
        if spec is None:
            raise CodecError(f"agent {msg.dst} holds no component {msg.component!r}")
        like = {n: (_dtype(dt), tuple(shape)) for n, (dt, shape) in spec.items()}
        return self.decode(msg.component, msg.body, like)

    def bytes(self, component: str, like: Mapping[str, Spec]) -> int:
        """Encoded bytes of one copy of ``component`` (tensors ``like``)."""
        comp = self.compressor(component)
        return sum(comp.bytes(tuple(shape), dt) for dt, shape in like.values())

    def bound_specs(self, expected: Mapping[tuple[int, str], Mapping[str, tuple[str, tuple]]]
                    ) -> dict:
        """Wire specs (dtype *names*) that bound both a plain and an encoded copy of every
        expected component (for the receiver's frame limits)."""
        out = {}
        for (agent, component), spec in expected.items():
            like = {n: (_dtype(dt), tuple(shape)) for n, (dt, shape) in spec.items()}
            enc = encoded_spec(self.compressor(component), like)
            out[agent, component] = {**spec, **{n: (str(dt).removeprefix("torch."), shape)
                                                for n, (dt, shape) in enc.items()}}
        return out


def like_of(tensors: Mapping[str, torch.Tensor]) -> dict[str, Spec]:
    return {n: (t.dtype, tuple(t.shape)) for n, t in tensors.items()}


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise CodecError(f"unknown dtype {name!r}")
    return dtype


def _compressor(name: str, params: Mapping[str, Any], field: str) -> Compressor:
    try:
        return COMPRESSORS.create(name, params, f"{field}.compressor", f"{field}.params")
    except ConfigError as err:
        if err.field.startswith("communication"):
            raise
        raise ConfigError(f"{field}.params.{err.field}", err.problem) from None
    except TypeError as err:
        raise ConfigError(f"{field}.params", str(err)) from None
