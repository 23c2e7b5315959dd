"""Help and errors of the `taorl` command: every argument described (with its default), one error
line (never "taorl model: error: taorl model:"), a hub id without network fails in seconds, the
primed SmolLM2 is named by a name."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taorl.cli import COMMANDS, build_parser

ROOT = Path(__file__).parents[1]


def _taorl(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "taorl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **(env or {})})


def _one_line(out):
    assert out.returncode == 2, (out.stdout[-2000:], out.stderr[-2000:])
    lines = [x for x in out.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_every_argument_of_every_subcommand_is_described():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(sub.choices) == set(COMMANDS)
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help and len(action.help) > 8, f"taorl {name}: {action.dest} has no description"
            text = p.format_help()
            # a default worth knowing is printed (the formatter adds it unless the help names it)
            if action.default not in (None, False, [], "==SUPPRESS=="):
                assert f"default: {action.default}" in text or "default" in action.help, (name, action.dest)


def test_help_shows_defaults_and_resume_usage():
    def text(*args):
        out = _taorl(*args)
        assert out.returncode == 0
        return " ".join(out.stdout.split())  # argparse wraps to the terminal width

    t = text("train", "--help")
    assert "--resume RUN_DIR" in t and "not needed with --resume" in t
    t = text("synth", "--help")
    assert "(default: 50)" in t and "(default: 64)" in t
    t = text("eval", "--help")
    assert "--step STEP" in t and "smollm2-135m-primed" in t


def test_train_without_arguments_says_what_is_missing():
    line = _one_line(_taorl("train"))
    assert line.startswith("taorl train: error:") and "config" in line and "--resume RUN_DIR" in line
    assert "required" not in line


def test_model_error_has_one_prefix():
    line = _one_line(_taorl("model", "prepare", "nope"))
    assert line.count("taorl model") == 1 and "'nope'" in line and "smollm2-135m-primed" in line


def test_unreachable_hub_fails_in_seconds(tmp_path):
    """No network: one line within seconds instead of ~50 s of retries and a traceback. The hub is
    pointed at a closed local port so the test is the same with or without a network."""
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
    t0 = time.perf_counter()
    line = _one_line(_taorl("eval", "someone/some-model", "--benchmarks", "amc23", env=env))
    assert time.perf_counter() - t0 < 30  # interpreter start + imports included
    assert "someone/some-model" in line and "cannot be reached" in line and "127.0.0.1:9" in line


def test_reachable_check_by_hand():
    import socket

    from taorl.models import _reachable

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        assert _reachable(f"http://127.0.0.1:{port}", 2.0)
    finally:
        srv.close()
    assert not _reachable(f"http://127.0.0.1:{port}", 2.0)  # closed now


def test_primed_name_without_cache_says_how_to_build(tmp_path, monkeypatch):
    from taorl.config import load_config
    from taorl.errors import UserError
    from taorl.models import PRIMED, load_model

    monkeypatch.setenv("TAORL_CACHE", str(tmp_path))
    cfg = load_config(None, [f"model.name={PRIMED}"])
    with pytest.raises(UserError, match=f"taorl model prepare {PRIMED}"):
        load_model(cfg.model)
    out = _taorl("model", "path", PRIMED, env={"TAORL_CACHE": str(tmp_path)})
    assert out.returncode == 0 and "not primed yet" in out.stdout


def test_primed_name_resolves_to_the_default_configs_priming(tmp_path, monkeypatch):
    """The name points at $TAORL_CACHE/primed/<key of configs/default.yaml>, the directory
    `make train` fills; a stand-in model directory there is what load_model then loads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from taorl.config import load_config
    from taorl.models import PRIMED, load_model, load_tokenizer, primed_smollm2
    from taorl.train.primed import REPORT_FILE, primed_key

    tok = load_tokenizer("tiny")  # the SmolLM2 tokenizer, from the usual cache
    monkeypatch.setenv("TAORL_CACHE", str(tmp_path))
    d = tmp_path / "primed" / primed_key(load_config(ROOT / "configs" / "default.yaml"))
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    model.save_pretrained(d)
    tok.save_pretrained(d)
    (d / REPORT_FILE).write_text("{}")
    assert primed_smollm2() == d
    m, _ = load_model(load_config(None, [f"model.name={PRIMED}", "model.dtype=float32"]).model)
    assert m.config.hidden_size == 16
