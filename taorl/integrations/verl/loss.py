"""Loss-time TAO-RL shaping on verl's actor workers (design L, `tao.entropy_source: train_forward`).

TaoSyncTrainer installs `partial(tao_ppo_loss, config=<verl ActorConfig>, algo=<taorl AlgoConfig>)`
with `actor_rollout_wg.set_loss_fn` after verl's `_setup()`. verl then calls it once per
micro-batch with the model output of the training forward pass, with verl's `ppo_loss` signature:

    tao_ppo_loss(config, model_output, data, dp_group=None) -> (loss, metrics)

Per micro-batch (rows response-aligned, [b, R]):

    1. log π and H_t of the training forward pass (model_output["log_probs"], ["entropy"]: verl
       computes the entropy when actor.calculate_entropy is on; TaoSyncTrainer checks it at start)
    2. from TransferQueue, written by the advantage step: `advantages` = the UNshaped w_i · Â_i on
       the model tokens of trained rows, `tao_weight` = w_i, `response_mask` (zeroed on w_i = 0)
    3. the shaping chain of taorl's own trainer, taorl.algo.shape_advantage: post-tool gate from the
       response mask (layout.turns_from_mask: 2nd and later runs of 1s; turn_ok from
       extra_fields["tao"] for requires_success), Ĥ with taorl's norm scope (trajectory: per row;
       micro_batch, *code*: over this micro-batch's trained tokens) and detach switch (code_compat:
       the gradient flows through Ĥ, μ and σ), Ã_t = Â_i (1 + a g_t Ĥ_t)
    4. A_t = w_i · Ã_t into verl's registered policy loss (get_policy_loss_fn(policy_loss.loss_mode):
       clip-higher, dual-clip, rollout-correction weights are verl's), then verl's entropy and KL
       terms and verl's aggregation over the global batch (loss_agg_mode, batch_num_tokens, dp_size)

For 0 < w_i ≤ 1 step 4 equals taorl's weighted loss (the clipped PPO terms are positively homogeneous
in A); verl's entropy and KL terms are not weighted by w_i (as in design A). The metrics add taorl's
shaping diagnostics of the training forward pass (verl reports them as actor/tao/...).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn, kl_penalty
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

from taorl.algo import shape_advantage, shaping_diagnostics
from taorl.integrations.common.advantage import rows_batch
from taorl.integrations.verl.fields import row_lists

WEIGHT_FIELD = "tao_weight"  # w_i per row, written by TaoSyncTrainer._compute_advantage (train_forward)
# gates and norm scopes whose statistics span the whole step: not computable per micro-batch
STEP_WIDE = {"gate": ("entropy_quantile",), "norm_scope": ("batch",)}


def unsupported(algo) -> list[str]:
    """The taorl settings that loss-time shaping cannot honour (empty when all is well)."""
    sc = algo.shaping
    out = []
    if not sc.enabled:
        return out
    if sc.gate in STEP_WIDE["gate"]:
        out.append(f"tao.algo.shaping.gate={sc.gate} (a step-wide quantile)")
    if sc.norm_scope in STEP_WIDE["norm_scope"]:
        out.append(f"tao.algo.shaping.norm_scope={sc.norm_scope} (step-wide μ, σ)")
    return out


def _response_lengths(data: TensorDict, R: int) -> list[int]:
    responses = data["responses"]
    if responses.is_nested:
        return responses.offsets().diff().tolist()
    mask = data["attention_mask"]  # left-right padded layout: the response part of the attention mask
    return mask[:, -responses.shape[1]:].sum(-1).clamp(max=R).tolist()


def _flags(data: TensorDict) -> list | None:
    if "extra_fields" not in data.keys():  # noqa: SIM118 (TensorDict forbids `in`)
        return None
    return [(e or {}).get("tao") if isinstance(e, dict) else None for e in row_lists(data["extra_fields"])]


def _fit(x: torch.Tensor, R: int) -> torch.Tensor:
    """[b, T] -> [b, R]: cut or right-pad with zeros."""
    if x.shape[1] >= R:
        return x[:, :R]
    return torch.nn.functional.pad(x, (0, R - x.shape[1]))


def tao_ppo_loss(config, model_output, data: TensorDict, dp_group=None, *, algo):
    """verl's ppo_loss with TAO-RL's entropy-guided shaping from the training forward pass (module doc).

    config: verl ActorConfig; algo: taorl AlgoConfig (the run's tao.algo)."""
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    R = log_prob.shape[1]
    entropy = model_output.get("entropy", None)
    if entropy is None:
        raise RuntimeError("tao_ppo_loss (tao.entropy_source=train_forward) needs the training forward's "
                           "entropy: set actor_rollout_ref.actor.calculate_entropy=true")
    entropy = no_padding_2_padding(entropy, data)

    # verl's global-batch aggregation (read by agg_loss and the registered policy losses)
    info = config.global_batch_info
    info["dp_size"] = data["dp_size"]
    info["batch_num_tokens"] = data["batch_num_tokens"]
    info["global_batch_size"] = data["global_batch_size"]
    info["loss_scale_factor"] = config.loss_scale_factor
    global_norm = (data["dp_size"] > 1 or data["batch_num_tokens"] is not None
                   or data["global_batch_size"] is not None or config.loss_scale_factor is not None)
    summed = AggregationType.SUM if global_norm else AggregationType.MEAN  # partial sums of a global mean

    keys = list(data.keys())
    if WEIGHT_FIELD not in keys:
        raise KeyError(f"tao_ppo_loss: the micro-batch lacks `{WEIGHT_FIELD}`; TaoSyncTrainer's advantage step "
                       "writes it when tao.entropy_source=train_forward")
    lengths = _response_lengths(data, R)
    flags = _flags(data) if algo.shaping.requires_success else None
    weight = data[WEIGHT_FIELD].reshape(-1).to(torch.float32)
    fields = ["response_mask", "old_log_probs", "advantages"] + [
        f for f in ("rollout_is_weights", "ref_log_prob") if f in keys]
    padded = data.select(*fields).to_padded_tensor()
    mask = _fit(padded["response_mask"].to(torch.float32), R)
    old_log_prob = _fit(padded["old_log_probs"], R)
    A = _fit(padded["advantages"].to(torch.float32), R)  # w_i · Â_i

    # Â_i = A / w_i on trained rows; shaped by taorl's chain; then A_t = w_i · Ã_t
    trained = weight > 0
    inv_w = torch.where(trained, 1.0 / torch.where(trained, weight, torch.ones_like(weight)), torch.zeros_like(weight))
    batch = rows_batch(mask, lengths, A * inv_w[:, None], weight, flags)
    H = entropy.to(torch.float32)
    shaped, parts = shape_advantage(batch, H, algo)
    advantages = shaped * weight[:, None]
    response_mask = batch.loss_mask.bool()

    policy_loss_fn = get_policy_loss_fn(config.policy_loss.get("loss_mode", "vanilla"))
    pg_loss, pg_metrics = policy_loss_fn(
        old_log_prob=old_log_prob, log_prob=log_prob, advantages=advantages, response_mask=response_mask,
        loss_agg_mode=config.loss_agg_mode, config=config,
        rollout_is_weights=_fit(padded["rollout_is_weights"], R) if "rollout_is_weights" in keys else None)
    metrics = dict(Metric.from_dict(pg_metrics, aggregation=AggregationType.MEAN))
    metrics["actor/pg_loss"] = Metric(value=pg_loss, aggregation=summed)
    loss = pg_loss

    # verl's entropy regulariser (entropy_coeff, unweighted by w_i) on the same entropy tensor
    entropy_loss = agg_loss(loss_mat=entropy, loss_mask=response_mask, loss_agg_mode=config.loss_agg_mode, **info)
    loss = loss - config.entropy_coeff * entropy_loss
    metrics["actor/entropy_loss"] = Metric(value=entropy_loss, aggregation=summed)

    if config.use_kl_loss:
        kld = kl_penalty(logprob=log_prob, ref_logprob=_fit(padded["ref_log_prob"], R),
                         kl_penalty=config.kl_loss_type)
        kl_loss = agg_loss(loss_mat=kld, loss_mask=response_mask, loss_agg_mode=config.loss_agg_mode, **info)
        loss = loss + config.kl_loss_coef * kl_loss
        metrics["kl_loss"] = Metric(value=kl_loss, aggregation=summed)
        metrics["kl_coef"] = config.kl_loss_coef

    diag = shaping_diagnostics(parts["factor"], parts["gate"], H, parts["post_tool"], batch.loss_mask)
    metrics.update({k: Metric(value=v, aggregation=AggregationType.MEAN) for k, v in diag.items()})
    return loss, metrics
