"""Named variants of the TAO-RL maths: advantage estimators, gates and shaping forms.

The config names one of each (``algo.adv``, ``algo.shaping.gate``, ``algo.shaping.form``) and the
config validates those names against these registries, so adding a variant is one function in one
file plus a test, and nothing else changes:

    from taorl.algo.registry import register_advantage

    @register_advantage("rloo")
    def rloo(rewards, stats_mask, eps):
        \"\"\"Leave-one-out baseline: Â_i = r_i - mean_{j≠i} r_j.\"\"\"
        ...

Signatures (all tensors torch, [N, G] = groups x rollouts, [B, T] = rollouts x token positions):

    advantage  fn(rewards [N, G] float64, stats_mask [N, G] bool, eps: float) -> [N, G] float64
               stats_mask marks the rollouts that count in the group statistics; every rollout
               gets an advantage. A group with fewer than two counted rollouts should get 0.
    gate       fn(ctx: GateInputs, cfg: ShapingConfig) -> [B, T] float in {0, 1}
               ctx (taorl.algo.gate.GateInputs): segment, turn, turn_called, turn_ok, mask (the
               tokens that may be gated), entropy (may be None). 0 off ctx.mask.
    shaping    fn(adv [B, T], gate [B, T], entropy [B, T], h_norm [B, T], cfg: ShapingConfig)
               -> (shaped advantage Ã [B, T], factor Ã/Â [B, T])

The builtin variants register themselves in taorl/algo/advantages.py, gate.py and shaping.py;
`names(kind)` imports those modules first, so a lookup never misses a builtin. A plugin (for
example the verl integration) registers its own the same way, before its config is validated.
This module imports nothing from taorl and no torch, so the config can use it freely.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

_BUILTIN_MODULES = ("taorl.algo.advantages", "taorl.algo.gate", "taorl.algo.shaping")


class Registry:
    """name -> function, for one kind of variant."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._fns: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator: ``@ADVANTAGES.register("grpo")``. Registering a taken name is an error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def deco(fn: Callable) -> Callable:
            if name in self._fns and self._fns[name] is not fn:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._fns[name].__module__})")
            self._fns[name] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable:
        _load_builtins()
        try:
            return self._fns[name]
        except KeyError:
            raise ValueError(f"{self.kind} {name!r}: expected one of {', '.join(map(repr, self.names()))}") from None

    def names(self) -> tuple[str, ...]:
        _load_builtins()
        return tuple(self._fns)

    def __contains__(self, name: object) -> bool:
        _load_builtins()
        return name in self._fns


ADVANTAGES = Registry("advantage estimator")
GATES = Registry("gate")
SHAPING = Registry("shaping form")
REGISTRIES = {"advantage": ADVANTAGES, "gate": GATES, "shaping": SHAPING}

register_advantage = ADVANTAGES.register
register_gate = GATES.register
register_shaping = SHAPING.register

_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in _BUILTIN_MODULES:
            importlib.import_module(mod)


def names(kind: str) -> tuple[str, ...]:
    """The registered names of one kind: "advantage", "gate" or "shaping"."""
    if kind not in REGISTRIES:
        raise ValueError(f"registry {kind!r}: expected one of {', '.join(REGISTRIES)}")
    return REGISTRIES[kind].names()
