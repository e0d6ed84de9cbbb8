"""Name -> component registries. Config refers to every pluggable piece by a registered name.

Adding a component is one decorated definition in one file plus one import line in the
package's ``__init__``; ``parsefl list KIND`` shows every name with its one-line description.
A registry may name the package that fills it (``module``): it is imported on first use, so
the registry is complete wherever it is read, without a module-level import circle.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from parsefl.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories (or classes) of one kind."""

    def __init__(self, kind: str, module: str | None = None) -> None:
        self.kind = kind
        self.module = module  # imported on first read: its members register themselves
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def _load(self) -> None:
        if self.module is not None:
            module, self.module = self.module, None
            importlib.import_module(module)

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; the description defaults to the
        first line of its docstring."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._descriptions[name] = description or (doc[0] if doc else "")
            return obj

        return decorator

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its entry (a component registered for a while only)."""
        self._load()
        if name not in self._items:
            raise KeyError(f"{self.kind} {name!r} is not registered")
        del self._descriptions[name]
        return self._items.pop(name)

    @contextmanager
    def registered(self, name: str, obj: T, description: str = "") -> Iterator[T]:
        """``obj`` registered as ``name`` inside the ``with`` block only (tests, notebooks)."""
        self.register(name, description)(obj)
        try:
            yield obj
        finally:
            self.unregister(name)

    def get(self, name: str, field: str | None = None) -> T:
        """The entry called ``name``; an unknown name raises a ConfigError listing the choices."""
        self._load()
        if name not in self._items:
            raise ConfigError(
                field or self.kind,
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}",
            )
        return self._items[name]

    def create(self, name: str, params: Mapping[str, Any] | None, field: str,
               params_field: str, **fixed: Any) -> Any:
        """Instantiate the registered class ``name`` with ``params`` (config keys, each checked
        against its constructor: an unknown one is a ConfigError naming ``params_field.key``
        and the allowed keys) plus ``fixed`` keywords the caller supplies itself."""
        import inspect

        cls: Any = self.get(name, field=field)
        params = dict(params or {})
        accepted = set(inspect.signature(cls.__init__).parameters) - {
            "self", "args", "kwargs", *fixed}
        for key in params:
            if key not in accepted:
                raise ConfigError(f"{params_field}.{key}", f"unknown parameter of {name!r}; "
                                  f"allowed: {', '.join(sorted(accepted)) or 'none'}")
        return cls(**fixed, **typed_params(cls.__init__, params, params_field))

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def describe(self) -> dict[str, str]:
        return {name: self._descriptions[name] for name in self.names()}

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items


def typed_params(factory: Callable[..., Any], params: Mapping[str, Any], field: str
                 ) -> dict[str, Any]:
    """``params`` checked against ``factory``'s annotations, and converted where a value
    fits losslessly (an integral 8.0 for an ``int``, 8 for a ``float``): a list or a string
    where a number is meant, or a boolean, is a ConfigError naming ``field.key`` instead of a
    TypeError from the factory's own comparisons. An annotation that cannot be resolved or
    checked (a plugin's own class) is left to the factory."""
    from pydantic import TypeAdapter, ValidationError

    from parsefl.config_checks import allows

    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # noqa: BLE001  (a plugin's annotation names what is not importable)
        return dict(params)
    out = dict(params)
    for key, value in params.items():
        hint = hints.get(key)
        if hint is None or allows(hint, Any):
            continue
        if isinstance(value, bool) and not allows(hint, bool):
            raise ConfigError(f"{field}.{key}", f"expected a number, got a boolean ({value!r})")
        try:
            adapter: TypeAdapter = TypeAdapter(hint)
        except Exception:  # noqa: BLE001  (pydantic has no schema for this annotation)
            continue
        try:
            out[key] = adapter.validate_python(value)
        except ValidationError as err:
            raise ConfigError(f"{field}.{key}", f"{err.errors()[0]['msg']} (got {value!r})"
                              ) from None
    return out


# One registry per kind. Each subpackage imports its members so that they register.
TOPOLOGIES: Registry = Registry("topology")
OVERLAYS: Registry = Registry("overlay", module="parsefl.overlays")
DATASETS: Registry = Registry("dataset")
PARTITIONS: Registry = Registry("partition")
ENCODERS: Registry = Registry("encoder")
FUSIONS: Registry = Registry("fusion")
SHARING: Registry = Registry("sharing")
AGGREGATION: Registry = Registry("aggregation", module="parsefl.aggregation")
ATTACKS: Registry = Registry("attack", module="parsefl.attacks")
COMPRESSORS: Registry = Registry("compressor", module="parsefl.compressors")
PLACEMENTS: Registry = Registry("placement", module="parsefl.topology.placement")
TRANSPORTS: Registry = Registry("transport", module="parsefl.runtime.transports")

ALL: dict[str, Registry] = {
    "topology": TOPOLOGIES,
    "overlay": OVERLAYS,
    "dataset": DATASETS,
    "partition": PARTITIONS,
    "encoder": ENCODERS,
    "fusion": FUSIONS,
    "sharing": SHARING,
    "aggregation": AGGREGATION,
    "attack": ATTACKS,
    "compressor": COMPRESSORS,
    "placement": PLACEMENTS,
    "transport": TRANSPORTS,
}

