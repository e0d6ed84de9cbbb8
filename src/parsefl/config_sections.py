"""The config sections of the robustness and dynamics features (adversary, receive checks,
aggregation, what changes during a run), and the strict base every config model shares."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Seeds reach sklearn and numpy's RandomState (which take 0..2**32-1) and torch generators as
# seed * 100_003 + agent (which must stay below 2**64): bounded here, refused in one line.
SEED_BOUND = 2**32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AggregationConfig(_Strict):
    name: str = "mean"  # a registered aggregator (parsefl list aggregation)
    params: dict[str, Any] = Field(default_factory=dict)  # its constructor keywords


class ChecksConfig(_Strict):
    # Receive-side checks (always on; runtime/checks.py): a copy whose L2 norm per component
    # exceeds max_norm, or max_ratio * max(own norm, 1) when set, is rejected.
    max_norm: float = Field(1e4, gt=0)
    max_ratio: float | None = Field(None, gt=0)


class AdversaryConfig(_Strict):
    # Which agents attack: ids, a seeded count, or a count per modality group ({fou: 1}).
    agents: list[int] | None = None
    count: int | None = Field(None, ge=0)
    per_group: dict[str, int] | None = None
    from_round: int = Field(0, ge=0)
    attack: str = "sign_flip"  # a registered attack (parsefl list attack)
    params: dict[str, Any] = Field(default_factory=dict)


class ModalityEvent(_Strict):
    agent: int = Field(ge=0)
    modality: str
    lose: int = Field(ge=0)  # the first round without it
    regain: int | None = Field(None, ge=1)  # the first round with it again (None: never)


class ModalityDynamics(_Strict):
    events: list[ModalityEvent] = Field(default_factory=list)
    outage: float = Field(0.0, ge=0, lt=1)  # each (agent, modality) out for a round w.p. this


class MembershipDynamics(_Strict):
    offline: float = Field(0.0, ge=0, lt=1)  # each agent offline for a round w.p. this
    join: dict[int, int] = Field(default_factory=dict)  # agent -> first round online
    leave: dict[int, int] = Field(default_factory=dict)  # agent -> first round gone for good


class DynamicsConfig(_Strict):
    """What changes during a run (docs: README, dynamics)."""

    modalities: ModalityDynamics = ModalityDynamics()
    membership: MembershipDynamics = MembershipDynamics()
    # Stragglers: local steps per round by group ("a+b": 2) or drawn per agent and round
    # uniformly from [min, max] ({min: 1, max: 4}); None: train.local_steps for everyone.
    local_steps: dict[str, int] | None = None
    seed: int | None = Field(None, ge=0, lt=SEED_BOUND)  # None: the run's seed


class KindCommunication(_Strict):
    """One component kind's overrides of the communication defaults (None: the default)."""

    compressor: str | None = None
    params: dict[str, Any] | None = None  # None: the default's when the compressor is too
    period: int | None = Field(None, ge=1)


class CommunicationConfig(_Strict):
    """How components travel (docs/communication.md): a registered compressor (parsefl list
    compressor), CHOCO-SGD error feedback, and a period per component kind."""

    compressor: str = "none"
    params: dict[str, Any] = Field(default_factory=dict)  # e.g. {fraction: 0.1} for topk
    error_feedback: bool = False  # CHOCO-SGD: public copies, compressed differences travel
    # CHOCO consensus step size; None: each compressor's own (1.0; topk 0.7)
    gamma: float | None = Field(None, gt=0, le=1)
    period: int = Field(1, ge=1)  # a kind with period k is sent in rounds r with r % k == 0
    # Per component kind (the name before the dot): enc, enc_s, head_u, head_r, synergy, ...
    kinds: dict[str, KindCommunication] = Field(default_factory=dict)


class PrivacyConfig(_Strict):
    """Differentially private local training (parsefl.privacy; README "Privacy"): each
    sample's gradient clipped to ``max_grad_norm``, Gaussian noise of std
    ``noise_multiplier * max_grad_norm`` added to their sum, accounted per agent by Opacus.

    ``epsilon`` alone: the noise is calibrated per agent to spend exactly ``epsilon`` (at
    ``delta``) by the last planned step. ``noise_multiplier`` alone: fixed noise, epsilon
    reported. Both: fixed noise, and ``epsilon`` is a budget the run refuses to exceed (or
    stops at, with ``stop_at_budget``). ``sampling``: ``poisson`` (what the accountant
    analyses: each sample in each step with probability batch / n) or ``shuffle`` (fixed-size
    batches of seeded shuffles, accounted as if Poisson)."""

    epsilon: float | None = Field(None, gt=0, le=1e4)
    delta: float = Field(1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0, le=1e6)
    noise_multiplier: float | None = Field(None, gt=0, le=1e4)
    accountant: Literal["rdp", "prv"] = "rdp"
    stop_at_budget: bool = False
    sampling: Literal["poisson", "shuffle"] = "poisson"
