"""On verl, verl's actor settings govern the policy loss; this module squares them with tao.algo.loss.

In both designs the clipped PPO terms, the aggregation and the KL and entropy terms are verl's
(design A: verl's own ppo_loss; design L: loss.tao_ppo_loss calls verl's registered policy loss and
agg_loss). taorl's `tao.algo.loss` names the same choices, so the two can disagree. At start,
TaoSyncTrainer reads verl's values as taorl would write them:

    tao.algo.loss.clip_low      <- actor.clip_ratio_low   (verl: clip_ratio when that is null)
    tao.algo.loss.clip_high     <- actor.clip_ratio_high  (idem)
    tao.algo.loss.dual_clip     <- actor.clip_ratio_c     (verl's vanilla loss always dual-clips)
    tao.algo.loss.anti_clip     <- false                  (verl has none)
    tao.algo.loss.agg           <- actor.loss_agg_mode
    tao.algo.loss.kl_coef       <- actor.kl_loss_coef if actor.use_kl_loss else 0  (k3 = low_var_kl)
    tao.algo.loss.entropy_coef  <- actor.entropy_coeff

and what taorl cannot write (a policy loss other than `vanilla`, an aggregation taorl lacks, a KL
estimator other than k3) is reported as such. Then:

  * a difference in a key the user set in the `tao:` block (tao.algo.loss.clip_high=0.3) is an
    error naming both settings: the run would not do what was asked;
  * a difference that comes from taorl's defaults or a preset is printed at start;
  * the run directory's config records verl's values (what the loss did), and its manifest carries
    verl's own settings under `verl_actor_loss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

K3 = ("low_var_kl", "k3")  # verl's names of the k3 estimator taorl uses
VERL = "actor_rollout_ref.actor"


@dataclass(frozen=True)
class Difference:
    tao_key: str  # under tao.algo.loss
    tao_value: Any
    verl_key: str | None  # under actor_rollout_ref.actor (None: verl has no such setting)
    verl_value: Any

    def __str__(self) -> str:
        if self.verl_key is None:  # nothing in verl to set
            return f"tao.algo.loss.{self.tao_key}={self.tao_value!r}, which verl's loss does not have"
        return (f"tao.algo.loss.{self.tao_key}={self.tao_value!r} but {VERL}.{self.verl_key}="
                f"{self.verl_value!r}")


def verl_loss(actor: Mapping) -> dict[str, Any]:
    """verl's loss settings of the actor config (what the run's loss will do), as plain values."""
    clip = actor.get("clip_ratio", 0.2)
    low, high = actor.get("clip_ratio_low", None), actor.get("clip_ratio_high", None)
    policy = actor.get("policy_loss", None) or {}
    return {"loss_mode": str(policy.get("loss_mode", "vanilla")),
            "clip_ratio_low": float(clip if low is None else low),
            "clip_ratio_high": float(clip if high is None else high),
            "clip_ratio_c": float(actor.get("clip_ratio_c", 3.0)),
            "loss_agg_mode": str(actor.get("loss_agg_mode", "token-mean")),
            "use_kl_loss": bool(actor.get("use_kl_loss", False)),
            "kl_loss_coef": float(actor.get("kl_loss_coef", 0.0)),
            "kl_loss_type": str(actor.get("kl_loss_type", "low_var_kl")),
            "entropy_coeff": float(actor.get("entropy_coeff", 0.0))}


def as_taorl(v: Mapping) -> tuple[dict[str, Any], list[str]]:
    """verl's settings (verl_loss) -> (tao.algo.loss values, what taorl cannot express)."""
    from taorl.algo.loss import AGGS

    kl = v["kl_loss_coef"] if v["use_kl_loss"] else 0.0
    values: dict[str, Any] = {"clip_low": v["clip_ratio_low"], "clip_high": v["clip_ratio_high"],
                              "dual_clip": v["clip_ratio_c"], "anti_clip": False, "kl_coef": kl,
                              "entropy_coef": v["entropy_coeff"]}
    foreign = []
    if v["loss_mode"] != "vanilla":
        foreign.append(f"{VERL}.policy_loss.loss_mode={v['loss_mode']!r} (taorl's loss is verl's 'vanilla': "
                       "clip-higher with dual-clip)")
    if v["loss_agg_mode"] in AGGS:
        values["agg"] = v["loss_agg_mode"]
    else:  # compared as a difference too (differences), so an explicit tao.algo.loss.agg fails
        foreign.append(f"{VERL}.loss_agg_mode={v['loss_agg_mode']!r} is not one of taorl's aggregations "
                       f"({', '.join(AGGS)}): the run directory's config keeps tao.algo.loss.agg")
    if kl > 0 and v["kl_loss_type"] not in K3:
        foreign.append(f"{VERL}.kl_loss_type={v['kl_loss_type']!r} (taorl's KL is k3: low_var_kl)")
    return values, foreign


# the verl key each taorl key is read from (for the messages)
SOURCE: dict[str, str | None] = {"clip_low": "clip_ratio_low", "clip_high": "clip_ratio_high",
                                 "dual_clip": "clip_ratio_c", "anti_clip": None, "agg": "loss_agg_mode",
                                 "kl_coef": "kl_loss_coef", "entropy_coef": "entropy_coeff"}


def differences(loss, v: Mapping, values: Mapping) -> list[Difference]:
    """Where tao.algo.loss (a LossConfig) differs from verl's settings `v` (verl_loss), read as
    taorl values `values` (as_taorl)."""
    out = []
    for key, verl_key in SOURCE.items():  # tao.algo.loss's field order
        verl_value = values.get(key, v["loss_agg_mode"])  # only agg can be missing: one taorl lacks differs
        mine = getattr(loss, key)
        same = mine == verl_value if not isinstance(mine, float) else abs(mine - float(verl_value)) < 1e-12
        if not same:
            shown = verl_value
            if key == "kl_coef":
                shown = f"{v['kl_loss_coef']} with use_kl_loss={v['use_kl_loss']}"
            out.append(Difference(key, mine, verl_key, shown))
    return out


@dataclass(frozen=True)
class Reconciled:
    loss: Any  # the LossConfig to record: verl's values where taorl can write them
    verl: dict[str, Any]  # verl_loss(actor), for the manifest
    notes: list[str]  # differences from defaults or a preset, and what taorl cannot express


def reconcile(actor: Mapping, loss, explicit: set[str]) -> Reconciled:
    """Square verl's actor loss settings with tao.algo.loss; `explicit`: the tao.algo.loss keys the
    user set in the `tao:` block. Raises ValueError for a difference in one of those."""
    v = verl_loss(actor)
    values, foreign = as_taorl(v)
    diffs = differences(loss, v, values)
    asked = [d for d in diffs if d.tao_key in explicit]
    if asked:
        raise ValueError("on verl the actor's settings govern the loss, and they differ from what the tao: block "
                         f"asks: {'; '.join(map(str, asked))}. Set the {VERL} value, or drop the tao.algo.loss key")
    notes = [f"{d} (from taorl's defaults or the preset; verl's value is used)" for d in diffs
             if d.tao_key != "agg" or "agg" in values] + foreign
    return Reconciled(loss=loss.model_copy(update=values), verl=v, notes=notes)
