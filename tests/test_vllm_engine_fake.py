"""VLLMEngine's own logic on a CPU, driven by a fake `llm_engine` that behaves like vLLM 0.26's V1
LLMEngine with RequestOutputKind.DELTA: add_request(request_id, prompt, params, lora_request=...)
(reading lora_request.lora_name as vLLM's output processor does), step() -> RequestOutputs that
carry only the ids sampled since the last step (nothing during prefill, possibly several ids per
step), one {token_id: Logprob} entry per new id, finish_reason 'stop' / 'length' on the last one,
and abort_request(ids). The tokenizer is the real SmolLM2 one.

What only a real vLLM can show (kernels, memory, weight loading) is in tests/test_gpu_device.py.
"""

import os
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from taorl.rollout.engine import SamplingParams
from taorl.rollout.vllm import VLLMEngine, request_seed

FENCE_TEXT = "Let me compute.\n```python\nprint(1+1)\n```\nThe answer is 2, and more text follows"


@dataclass
class Logprob:  # the shape of vllm.logprobs.Logprob
    logprob: float
    rank: int | None = 1
    decoded_token: str | None = None


class FakeApi:
    """Stands in for VllmApi: plain dicts instead of vllm objects."""

    def sampling_params(self, params, cap, seed):
        from taorl.rollout.vllm import sampling_kwargs

        return {**sampling_kwargs(params, cap, seed), "output_kind": "DELTA"}

    def tokens_prompt(self, ids):
        return {"prompt_token_ids": list(ids)}


def fake_logprob(seed: int, j: int) -> float:
    """The fake model's log-prob of its j-th sampled token under request seed `seed`."""
    return -((seed % 97) + j + 1) / 100.0


class FakeLLMEngine:
    """vLLM 0.26 LLMEngine, DELTA outputs. continuation(prompt_ids) -> the ids the 'model' samples."""

    def __init__(self, continuation, eos_id, per_step=1, logprobs_mode="processed_logprobs"):
        self.continuation = continuation
        self.eos_id = eos_id
        self.per_step = per_step
        self.model_config = SimpleNamespace(logprobs_mode=logprobs_mode)
        self.live = {}  # request id -> state, in arrival order
        self.added, self.aborted = [], []

    def add_request(self, request_id, prompt, params, lora_request=None):
        assert params["output_kind"] == "DELTA" and params["logprobs"] == 0 and params["n"] == 1
        lora_name = lora_request.lora_name if lora_request is not None else None  # as vLLM does
        ids = list(self.continuation(prompt["prompt_token_ids"]))
        self.added.append({"id": request_id, "params": params, "lora": lora_request, "lora_name": lora_name})
        self.live[request_id] = {"ids": ids, "pos": 0, "params": params, "prefilled": False}

    def abort_request(self, request_ids, internal=False):
        for rid in request_ids:
            self.aborted.append(rid)
            self.live.pop(rid, None)

    def step(self):
        outs = []
        for rid, st in list(self.live.items()):
            if not st["prefilled"]:  # DELTA: no output while the prompt is prefilled
                st["prefilled"] = True
                continue
            p = st["params"]
            new, finish = [], None
            for _ in range(self.per_step):
                j = st["pos"]
                if j >= len(st["ids"]):
                    raise AssertionError("the fake model's script ran out before eos or max_tokens")
                new.append(st["ids"][j])
                st["pos"] += 1
                if new[-1] == self.eos_id:
                    finish = "stop"
                    break
                if st["pos"] >= p["max_tokens"]:
                    finish = "length"
                    break
            first = st["pos"] - len(new)
            lps = [{t: Logprob(fake_logprob(p["seed"], first + k))} for k, t in enumerate(new)]
            comp = SimpleNamespace(index=0, text="", token_ids=new, logprobs=lps, finish_reason=finish,
                                   stop_reason=None)
            outs.append(SimpleNamespace(request_id=rid, outputs=[comp], finished=finish is not None))
            if finish is not None:
                del self.live[rid]
        return outs


class FakeLLM:
    def __init__(self, engine):
        self.llm_engine = engine
        self.calls = []

    def sleep(self, level=1):
        self.calls.append(("sleep", level))

    def wake_up(self):
        self.calls.append(("wake_up",))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))


@pytest.fixture()
def tok(tiny_tokenizer):
    return tiny_tokenizer


def scripted(tok, texts_by_first_id=None, default=None):
    """continuation: the prompt's first id picks a text; the model 'samples' its ids."""
    enc = {k: tok.encode(v, add_special_tokens=False) if isinstance(v, str) else v
           for k, v in (texts_by_first_id or {}).items()}
    dflt = tok.encode(default or "plain words without any fence at all " * 4, add_special_tokens=False)
    return lambda prompt: enc.get(prompt[0], dflt)


def make(tok, continuation, **kw):
    per_step = kw.pop("per_step", 1)
    mode = kw.pop("logprobs_mode", "processed_logprobs")
    eng = FakeLLMEngine(continuation, tok.eos_token_id, per_step=per_step, logprobs_mode=mode)
    llm = FakeLLM(eng)
    return VLLMEngine(llm, tok, api=FakeApi(), **kw), llm, eng


# ----------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("per_step", [1, 4])
def test_stop_right_after_the_closing_fence(tok, per_step):
    from taorl.tools.parse import complete_block_end

    fence = tok.encode(FENCE_TEXT, add_special_tokens=False)
    engine, _, eng = make(tok, scripted(tok, {1: fence}), per_step=per_step)
    [c] = engine.generate([[1, 2, 3]], SamplingParams(temperature=1.0, max_tokens=200, seed=3))
    assert c.finish == "stop"
    text = tok.decode(c.token_ids)
    assert complete_block_end(text) is not None and complete_block_end(tok.decode(c.token_ids[:-1])) is None
    assert c.token_ids == fence[:len(c.token_ids)] and len(c.token_ids) < len(fence)
    # the request was aborted in vLLM; ids it sampled past the cut in the same step were dropped
    assert eng.aborted == [eng.added[0]["id"]]
    extra = engine.stats["aborted_extra"]
    assert 0 <= extra < per_step and (per_step > 1 or extra == 0)
    seed = request_seed(3, 0)
    assert c.logprobs == [fake_logprob(seed, j) for j in range(len(c.token_ids))]


def test_eos_and_length_finishes_and_caps(tok):
    eos = tok.eos_token_id
    boxed = tok.encode("so \\boxed{2}", add_special_tokens=False) + [eos]
    engine, _, eng = make(tok, scripted(tok, {1: boxed}), max_model_len=40)
    prompts = [[1, 5], [2, 5], [3] * 38, [4] * 40]
    assert len(boxed) < 20
    out = engine.generate(prompts, SamplingParams(temperature=1.0, max_tokens=20, seed=0), max_tokens=[50, 6, 9, 9])
    # eos: kept in the ids; length: the smaller of the caps, and of the room left in max_model_len
    assert out[0].finish == "eos" and out[0].token_ids == boxed and out[0].token_ids[-1] == eos
    assert out[1].finish == "length" and len(out[1].token_ids) == 6
    assert out[2].finish == "length" and len(out[2].token_ids) == 2  # 40 - 38
    assert out[3].finish == "length" and out[3].token_ids == []  # no room: never sent to vLLM
    assert len(eng.added) == 3 and [a["params"]["max_tokens"] for a in eng.added] == [20, 6, 2]
    with pytest.raises(ValueError, match="max_tokens"):
        engine.generate([[1]], SamplingParams(), max_tokens=[1, 2])


def test_seeds_per_request_and_reproducible(tok):
    engine, _, eng = make(tok, scripted(tok))
    p = SamplingParams(temperature=1.0, max_tokens=5, seed=11)
    a = engine.generate([[1], [2], [3]], p)
    assert [x["params"]["seed"] for x in eng.added] == [request_seed(11, i) for i in range(3)]
    b = engine.generate([[1], [2], [3]], p)
    assert [c.logprobs for c in a] == [c.logprobs for c in b]
    c = engine.generate([[1], [2], [3]], SamplingParams(temperature=1.0, max_tokens=5, seed=12))
    assert [x.logprobs for x in c] != [x.logprobs for x in a]
    # streaming: an explicit seed wins over params.seed
    engine.submit("k", [1], p, seed=77)
    assert eng.added[-1]["params"]["seed"] == 77
    [(key, comp)] = engine.poll()
    assert key == "k" and comp.logprobs[0] == fake_logprob(77, 0)


def test_streaming_submit_poll(tok):
    lengths = {1: 3, 2: 9, 3: 5}
    eos = tok.eos_token_id
    engine, _, _ = make(tok, lambda prompt: list(range(1000, 999 + lengths[prompt[0]])) + [eos])
    p = SamplingParams(temperature=1.0, max_tokens=100, seed=0, stop_at_code_block=False)
    for k in lengths:
        engine.submit(f"t{k}", [k], p)
    assert engine.pending() == 3
    order = []
    while engine.pending():
        for key, c in engine.poll():
            order.append(key)
            assert c.token_ids == list(range(1000, 999 + lengths[int(key[1:])])) + [eos] and c.finish == "eos"
    # the shortest finishes first; nothing left, poll() is empty
    assert order == ["t1", "t3", "t2"] and engine.poll() == []
    engine.submit("x", [1], p)
    with pytest.raises(RuntimeError, match="pending"):
        engine.generate([[1]], p)


def test_logprob_modes_and_greedy(tok):
    engine, _, _ = make(tok, scripted(tok))
    [c] = engine.generate([[1]], SamplingParams(temperature=0.7, max_tokens=4, seed=0))
    assert c.full_logprobs == c.logprobs  # processed, untruncated: both are log_softmax(z/T)[y]
    [c] = engine.generate([[1]], SamplingParams(temperature=0.7, top_p=0.9, max_tokens=4, seed=0))
    assert c.full_logprobs is None  # truncated: the sampling log-probs are not the untruncated ones
    [g] = engine.generate([[1]], SamplingParams(temperature=0.0, max_tokens=4, seed=0))
    assert g.logprobs == [0.0] * 4 and g.full_logprobs == [fake_logprob(request_seed(0, 0), j) for j in range(4)]
    raw, _, _ = make(tok, scripted(tok), logprobs_mode="raw_logprobs")
    with pytest.warns(UserWarning, match="logprobs_mode"):
        [c] = raw.generate([[1]], SamplingParams(temperature=0.7, max_tokens=4, seed=0))
    assert c.full_logprobs is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [c] = raw.generate([[1]], SamplingParams(temperature=1.0, max_tokens=4, seed=0))
    assert c.full_logprobs == c.logprobs


def test_release_sleeps_and_the_next_rollout_wakes(tok):
    engine, llm, _ = make(tok, scripted(tok), sleep_between_phases=True)
    p = SamplingParams(temperature=1.0, max_tokens=3, seed=0)
    engine.generate([[1]], p)
    engine.release()
    engine.release()  # already asleep: once
    assert llm.calls == [("sleep", 1)]
    engine.generate([[1]], p)
    assert llm.calls == [("sleep", 1), ("wake_up",)]
    engine.submit("live", [1], p)
    engine.release()  # a request in flight: no sleep
    assert llm.calls[-1] == ("wake_up",)
    engine.poll()
    off, llm2, _ = make(tok, scripted(tok), sleep_between_phases=False)
    off.generate([[1]], p)
    off.release()
    assert llm2.calls == []


@dataclass
class FakeLoRARequest:  # the fields vLLM reads
    lora_name: str
    lora_int_id: int


class Sentinel:  # Unsloth's _MergedLoRARequest: no lora_name, marked _unsloth_merged
    _unsloth_merged = True


class FakePolicy:
    def __init__(self, sentinel=False):
        self.n = 0
        self.sentinel = sentinel

    def lora_request(self):
        self.n += 1
        return Sentinel() if self.sentinel else FakeLoRARequest(str(self.n), self.n)


def test_lora_request_pushed_lazily_once_per_sync(tok):
    policy = FakePolicy()
    engine, llm, eng = make(tok, scripted(tok), policy=policy, weight_sync="lora_request")
    p = SamplingParams(temperature=1.0, max_tokens=3, seed=0)
    engine.generate([[1], [2]], p)
    assert policy.n == 1 and [a["lora_name"] for a in eng.added] == ["1", "1"]
    assert llm.calls == [("reset_prefix_cache",)]  # no KV block of the old adapter is reused
    engine.generate([[1]], p)
    assert policy.n == 1
    engine.sync(None)
    engine.sync(None)  # several optimizer steps, one push
    engine.generate([[1]], p)
    assert policy.n == 2 and eng.added[-1]["lora_name"] == "2"


def test_unsloth_merged_rollout_sentinel_is_a_clear_error(tok):
    # the bug seen on the GPU: the sentinel reached vLLM, which read .lora_name
    eng = FakeLLMEngine(scripted(tok), tok.eos_token_id)
    with pytest.raises(AttributeError, match="lora_name"):
        eng.add_request("r", {"prompt_token_ids": [1]}, FakeApi().sampling_params(SamplingParams(), 3, 0),
                        lora_request=Sentinel())
    engine, _, eng = make(tok, scripted(tok), policy=FakePolicy(sentinel=True), weight_sync="lora_request")
    with pytest.raises(RuntimeError, match="UNSLOTH_VLLM_MERGED_ROLLOUT=0"):
        engine.generate([[1]], SamplingParams(max_tokens=3))
    assert eng.added == []


def test_unsloth_policy_asks_for_a_real_lora_request(monkeypatch):
    from taorl.train.policy_unsloth import UnslothPolicy

    class Model:  # Unsloth's load_lora: the sentinel when the merged rollout is switched on
        def load_lora(self, directory, load_tensors=False):
            assert load_tensors
            if os.environ.get("UNSLOTH_VLLM_MERGED_ROLLOUT") == "1":
                return Sentinel()
            return FakeLoRARequest("1", 1)

    monkeypatch.setenv("UNSLOTH_VLLM_MERGED_ROLLOUT", "1")
    class Policy:  # the attributes lora_request uses (a class: the policy is weak-referenced)
        lora, _lora_dir, model = True, None, Model()

    policy = Policy()
    req = UnslothPolicy.lora_request(policy)
    assert isinstance(req, FakeLoRARequest)
    assert os.environ["UNSLOTH_VLLM_MERGED_ROLLOUT"] == "1"  # restored after the call
