"""The multi-turn tool-integrated rollout loop (spec §1), written once against the Engine interface.

For P problems and G rollouts each, P·G trajectories advance turn by turn together:

    prompt      chat template (system prompt from data config, user = problem, generation prompt),
                or plain text when data.use_chat_template is false or the tokenizer has no template
    turn k      one engine call for every live trajectory, context = prompt + response so far;
                it stops right after the first complete fenced code block (or eos, or the cap
                min(max_turn_tokens, max_response_tokens - response length))
                the returned ids are appended as they are (segment MODEL, turn k, sampling logprob)
    then        what the turn asks for (taorl.rollout.turn.after_model_turn): \\boxed{ in its prose
                ends the episode; a tool call runs, all calls of the turn concurrently
                (tool.run_many), and its observation "\\nCode execution result: ...\\n"
                (≤ obs_max_chars chars, ≤ obs_max_tokens tokens) is tokenized ALONE and appended
                (segment TOOL, turn k, logprob 0, never trained on); no call ends the episode as
                truncated when the engine cut the turn at its token cap, else as a void turn.
                After the observation (taorl.rollout.turn.after_observation): \\boxed{ in it,
                the response budget, or the last turn ends the episode.
    grading     the decoded response (model turns and observations) by `grader`: its last \\boxed{}
                against the reference; reward 1 or 0

Token sequences are only ever concatenations of engine ids and observation ids: the model's own
tokens are never decoded and re-encoded (decoding is for display and parsing only). With the tool
disabled there is a single turn of plain chain-of-thought, capped at max_response_tokens and not
stopped at code blocks (used by evaluation).

The tool is a taorl.tools.base.Tool (find the call in a turn, run calls, render a result); a
Sandbox passed instead is wrapped as the Python tool (taorl.tools.python_tool).

For the post-tool gate the trainer needs, per trajectory: `turn[t]` of each response token and
`tool_calls[i].turn` (the turn whose code block made call i): token t is post-tool when it is a
model token and turn[t] - 1 is a called turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from taorl.rollout.engine import Completion, SamplingParams
from taorl.rollout.turn import after_model_turn, after_observation, observation_tokens, turn_cap
from taorl.types import SEG_MODEL, SEG_TOOL, ToolCall, Trajectory


class Rollouts(list):
    """The trajectories (a list) plus `timings`: gen_s, tool_s, reward_s, model_tokens, turns."""

    timings: dict[str, float]


# ------------------------------------------------------------------------------------ rendering
def prompt_ids(tokenizer, problem: str, data_cfg) -> list[int]:
    """The prompt token ids of one problem (chat template with generation prompt, or plain text)."""
    system = (data_cfg.system_prompt or "").strip()
    if data_cfg.use_chat_template and getattr(tokenizer, "chat_template", None):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": problem}]
        ids = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
        return [int(i) for i in ids]
    text = f"{system}\n\n{problem}\n\n" if system else f"{problem}\n\n"
    return list(tokenizer.encode(text, add_special_tokens=True))


def observation_text(result, rollout_cfg, tool=None) -> str:
    """The observation string of one tool result (≤ obs_max_chars; Python: "\\nCode execution result: ...\\n")."""
    if tool is not None:
        return tool.render(result, rollout_cfg.obs_max_chars)
    from taorl.tools.observation import format_observation

    return format_observation(result, rollout_cfg.obs_max_chars)


def observation_ids(tokenizer, result, rollout_cfg, tool=None) -> list[int]:
    """Observation tokens, tokenized alone (no special tokens) and cut to obs_max_tokens."""
    return observation_tokens(tokenizer, observation_text(result, rollout_cfg, tool), rollout_cfg.obs_max_tokens)[0]


def turn_seed(seed: int, turn: int) -> int:
    """Engine seed of turn k of a rollout batch seeded `seed` (distinct per turn, reproducible)."""
    return (int(seed) * 1_000_003 + turn) % (2**63 - 1)


# ------------------------------------------------------------------------------------------ loop
def run_rollouts(engine, tool, problems: list, group_size: int, cfg, data_cfg, *,
                 tool_enabled: bool = True, seed: int = 0, grader: Callable | None = None,
                 progress: bool = True) -> Rollouts:
    """G = group_size rollouts of each problem; trajectory (group=g, index=i) is rollout i of problems[g].

    tool: a taorl.tools.base.Tool, or a Sandbox (run as the Python tool); cfg:
    taorl.config.RolloutConfig; data_cfg: taorl.config.DataConfig; grader(response, reference)
    -> GradeResult (default taorl.rewards.grade). Returns a Rollouts list (with .timings).
    """
    from taorl.tools.python_tool import as_tool

    tool = as_tool(tool)
    if grader is None:
        from taorl.rewards import grade as grader
    tok = engine.tokenizer
    budget = cfg.max_response_tokens
    n_turns = cfg.max_turns if tool_enabled else 1
    max_turn_tokens = cfg.max_turn_tokens if tool_enabled else cfg.max_response_tokens
    timings = {"gen_s": 0.0, "tool_s": 0.0, "reward_s": 0.0, "model_tokens": 0.0, "turns": 0.0}

    trajs: list[Trajectory] = []
    for g, p in enumerate(problems):
        pids = prompt_ids(tok, p.problem, data_cfg)
        for i in range(group_size):
            trajs.append(Trajectory(group=g, index=i, problem_id=str(p.id), problem=p.problem,
                                    answer=p.answer, prompt_ids=list(pids)))
    pieces: list[list[str]] = [[] for _ in trajs]  # decoded turns and observations, for display/grading

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_turns, desc="rollout turns", unit="turn", leave=False)
    live = list(range(len(trajs)))
    for k in range(n_turns):
        if not live:
            break
        # ---- 1. one engine call for all live trajectories
        caps = [turn_cap(max_turn_tokens, budget, trajs[j].length) for j in live]
        params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                                max_tokens=max_turn_tokens, stop_at_code_block=tool_enabled and tool.stops_at_code_block,
                                seed=turn_seed(seed, k))
        t0 = time.perf_counter()
        comps: list[Completion] = engine.generate([trajs[j].prompt_ids + trajs[j].response_ids for j in live],
                                                  params, max_tokens=caps)
        timings["gen_s"] += time.perf_counter() - t0
        timings["turns"] += 1

        # ---- 2. append the model's ids; decide what each turn asks for
        calls: list[tuple[int, object]] = []  # (trajectory, taorl.tools.base.Call) to run this turn
        for j, c in zip(live, comps):
            t = trajs[j]
            if len(c.token_ids) != len(c.logprobs):
                raise ValueError(f"engine returned {len(c.token_ids)} ids but {len(c.logprobs)} logprobs")
            t.response_ids += c.token_ids
            t.segment += [SEG_MODEL] * len(c.token_ids)
            t.turn += [k] * len(c.token_ids)
            t.sample_logprobs += [float(x) for x in c.logprobs]
            t.n_turns = k + 1
            timings["model_tokens"] += len(c.token_ids)
            text = tok.decode(c.token_ids)
            pieces[j].append(text)
            # c.finish "length": the engine cut the turn at max_turn_tokens or at the response budget
            call, end = after_model_turn(text, tool if tool_enabled else None,
                                         cut=c.finish == "length", at_budget=t.length >= budget)
            if end is not None:
                end.apply(t)
            else:
                calls.append((j, call))

        # ---- 3. run this turn's code blocks together; append observations
        next_live = []
        if calls:
            t0 = time.perf_counter()
            results = tool.run_many([call for _, call in calls])
            timings["tool_s"] += time.perf_counter() - t0
            for (j, call), res in zip(calls, results):
                t = trajs[j]
                t.tool_calls.append(ToolCall(turn=k, code=call.code, status=res.status, stdout=res.stdout,
                                             stderr_last=res.stderr_last, wall_ms=float(res.wall_ms)))
                obs, obs_cut = observation_tokens(tok, observation_text(res, cfg, tool), cfg.obs_max_tokens,
                                                  room=budget - t.length)
                t.response_ids += obs
                t.segment += [SEG_TOOL] * len(obs)
                t.turn += [k] * len(obs)
                t.sample_logprobs += [0.0] * len(obs)
                obs_text = tok.decode(obs)
                pieces[j].append(obs_text)
                end = after_observation(obs_text, cut=obs_cut, at_budget=t.length >= budget,
                                        last_turn=k == n_turns - 1)
                if end is not None:
                    end.apply(t)
                else:
                    next_live.append(j)
        live = next_live
        if bar is not None:
            bar.update(1)
            bar.set_postfix(live=len(live), tokens=int(timings["model_tokens"]))
    if bar is not None:
        bar.close()

    # ---- 4. text for people, and the reward of the final \boxed answer
    t0 = time.perf_counter()
    for t, parts in zip(trajs, pieces):
        t.text = "".join(parts)
        res = grader(t.text, t.answer)
        t.reward = float(res.reward)
        t.reward_info = res.extracted if res.extracted is not None else res.reason
        t.check()
    timings["reward_s"] += time.perf_counter() - t0
    out = Rollouts(trajs)
    out.timings = timings
    return out
