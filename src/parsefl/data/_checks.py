"""Small validators shared by the dataset factories, partitions and the mix parser.

Each raises a ConfigError naming the config field, so a bad value in a YAML file is reported as
one line that says which key is wrong and what it accepts.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from numbers import Integral, Real
from typing import Any

from parsefl.errors import ConfigError


def check_int(field: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int, or raise if it is not an integer ``>= minimum``.

    Booleans are rejected although ``bool`` subclasses ``int``: ``true`` in a config is
    almost certainly a mistake, not the number 1.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(field, f"expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(field, f"expected an integer >= {minimum}, got {value}")
    return int(value)


def check_float(
    field: str,
    value: object,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = True,
    high_open: bool = True,
) -> float:
    """Return ``value`` as a float, or raise unless it is a number within the given bounds.

    Args:
        field: Config field named in the error.
        value: The value to check.
        low: Lower bound.
        high: Upper bound (``inf`` for none).
        low_open: Whether ``low`` itself is excluded.
        high_open: Whether ``high`` itself is excluded.
    """
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    wanted = f"expected a number in {left}{low}, {high}{right}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(field, f"{wanted}, got {value!r}")
    number = float(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if math.isnan(number) or too_low or too_high:
        raise ConfigError(field, f"{wanted}, got {value}")
    return number


def check_params(
    factory: Callable[..., Any], params: Mapping[str, object], prefix: str, skip: int
) -> None:
    """Reject keys of ``params`` that ``factory`` does not take as keyword arguments.

    Args:
        factory: The registered callable the params will be passed to.
        params: User-supplied keyword parameters.
        prefix: Config prefix for the error field, e.g. ``"data.params"``.
        skip: Number of leading positional parameters supplied by parsefl itself
            (``seed`` for datasets; ``y, n_agents, seed`` for partitions).
    """
    signature = inspect.signature(factory)
    parameters = list(signature.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    allowed = [
        p.name
        for p in parameters[skip:]
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    for key in params:
        if key not in allowed:
            listing = ", ".join(allowed) if allowed else "(none)"
            raise ConfigError(f"{prefix}.{key}", f"unknown parameter; allowed: {listing}")
