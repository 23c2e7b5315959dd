"""How the GPU path is wired into the CPU-testable parts: `taorl train` runs taorl.gpu.preflight
before anything imports transformers; the trainer releases the engine after each generation phase
(so a vLLM engine can sleep through training) and before it syncs new weights; every step logs the
trainer/engine mismatch and the run manifest records the device, the versions and the special
tokens. Real tiny model, real hf engine, real sandbox."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from taorl.config import load_config

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_taorl_train_calls_preflight_before_transformers(tmp_path):
    # a fresh interpreter: the CLI path up to preflight must not have imported transformers & co.
    code = (
        "import sys, taorl.gpu\n"
        "class Stop(Exception): pass\n"
        "def fake(cfg):\n"
        "    print('EARLY', sorted(m for m in ('transformers', 'peft', 'trl') if m in sys.modules))\n"
        "    print('BACKEND', cfg.model.backend, cfg.rollout.engine)\n"
        "    raise Stop\n"
        "taorl.gpu.preflight = fake\n"
        "from taorl.cli import main\n"
        "try:\n"
        f"    main(['train', 'configs/tiny.yaml', '--run-dir', {str(tmp_path / 'r')!r}])\n"
        "except Stop:\n"
        "    print('STOPPED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "EARLY []" in out.stdout and "BACKEND hf hf" in out.stdout and "STOPPED" in out.stdout
    assert not (tmp_path / "r").exists()  # nothing was built before the check


class RecordingEngine:
    """The real hf engine, with the phase calls recorded (release() is what VLLMEngine implements)."""

    def __init__(self, inner, events):
        self.inner, self.events = inner, events
        self.tokenizer = inner.tokenizer

    def generate(self, prompts, params, max_tokens=None):
        self.events.append("generate")
        return self.inner.generate(prompts, params, max_tokens)

    def sync(self, model):
        self.events.append("sync")
        self.inner.sync(model)

    def release(self):
        self.events.append("release")


def test_trainer_releases_the_engine_between_phases_and_logs_the_mismatch(tmp_path):
    from taorl.algo.rollout_correction import MISMATCH_METRICS
    from taorl.store import open_run
    from taorl.train.trainer import Trainer

    cfg = load_config(ROOT / "configs" / "tiny.yaml", [
        "train.steps=2", "algo.filter.group.enabled=false", "algo.rollout_correction.mode=token",
        "rollout.max_turns=1", "eval.every=1", "eval.benchmarks=[gsm8k]", "eval.limit=1", "eval.n=1",
        "eval.k=[1]", "eval.max_turns=1", "eval.max_response_tokens=8"])
    trainer = Trainer(cfg, tmp_path / "run")
    events = []
    trainer.engine = RecordingEngine(trainer.engine, events)
    trainer.run()
    # per step: rollouts, release, one optimizer step's sync, then the eval's generation and release
    step = ["generate", "release", "sync", "generate", "release"]
    assert [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]] == step * 2
    m = open_run(tmp_path / "run").metrics()
    for k in MISMATCH_METRICS:
        vals = m[k].to_list()
        assert len(vals) == 2 and not any(math.isnan(v) for v in vals), k  # rollouts were trained
    # the hf engine samples with the trained module itself: the mismatch is float noise
    assert max(m["sampling/logp_diff_max"].to_list()) < 1e-3
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    extra = manifest["extra"]
    assert extra["device"] == "cpu" and extra["versions"]["torch"].startswith("2.")
    tok = trainer.tokenizer
    assert extra["tokens"]["pad_token_id"] == tok.pad_token_id == trainer.pad_id
    assert extra["tokens"]["eos_token_id"] == tok.eos_token_id


def test_no_trained_rollout_logs_nan_not_nothing(tmp_path):
    from taorl.algo.rollout_correction import MISMATCH_METRICS
    from taorl.store import open_run
    from taorl.train.trainer import Trainer

    # a random model is never right: criterion 2 drops every group, nothing is trained
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["train.steps=1", "rollout.max_turns=1"])
    Trainer(cfg, tmp_path / "run").run()
    m = open_run(tmp_path / "run").metrics()
    assert m["train/trained_rollouts"].to_list() == [0.0]
    for k in MISMATCH_METRICS:
        v = m[k].to_list()
        assert len(v) == 1 and math.isnan(v[0]), k  # present, NaN


def test_unsloth_pad_token_replacement_is_agreed_on(tmp_path, tiny_tokenizer):
    """Unsloth replaces a pad equal to eos (SmolLM2: <|im_end|> -> <|endoftext|>): the tokenizer, the
    model's configs and the manifest note agree on the new pad; a changed eos is put back."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from taorl.train.policy_unsloth import agree_special_tokens

    tiny_tokenizer.save_pretrained(tmp_path)
    saved = AutoTokenizer.from_pretrained(str(tmp_path))
    assert saved.pad_token == saved.eos_token == "<|im_end|>"
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    tok.pad_token = "<|endoftext|>"  # what Unsloth did on load
    model = SimpleNamespace(config=SimpleNamespace(pad_token_id=saved.pad_token_id),
                            generation_config=SimpleNamespace(pad_token_id=saved.pad_token_id))
    note = agree_special_tokens(tok, model, tmp_path)
    pad = tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.pad_token_id == pad == model.config.pad_token_id == model.generation_config.pad_token_id
    assert tok.eos_token_id == saved.eos_token_id
    assert "'<|im_end|>'" in note and "'<|endoftext|>'" in note
    # nothing changed: no note; an eos changed behind our back is put back
    assert agree_special_tokens(AutoTokenizer.from_pretrained(str(tmp_path)), model, tmp_path) is None
    bad = AutoTokenizer.from_pretrained(str(tmp_path))
    bad.eos_token = "<|endoftext|>"
    assert "set back" in agree_special_tokens(bad, model, tmp_path)
    assert bad.eos_token_id == saved.eos_token_id
