"""Data cursor determinism and atomic, pruned, exact checkpoints (with a real tiny transformers model)."""

import json

import numpy as np
import pytest
import torch

from taorl.train.checkpoint import (
    clean_partial,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from taorl.train.cursor import DataCursor


def test_cursor_covers_each_epoch_once_and_resumes():
    c = DataCursor(10, seed=3)
    first = c.take(4) + c.take(4) + c.take(2)
    assert sorted(first) == list(range(10))  # one epoch = a permutation of the pool
    assert first != list(range(10))  # shuffled
    assert (c.epoch, c.pos) == (1, 0)
    # a cursor restored from a state draws the same problems as the original
    a = DataCursor(10, seed=3)
    a.take(7)
    b = DataCursor(10, seed=3)
    b.restore(a.state())
    drawn = a.take(6)
    assert drawn == b.take(6)
    # crossing an epoch: the last 3 of epoch 0, then the first 3 of epoch 1 (another permutation)
    ref = DataCursor(10, seed=3)
    assert a.state() == {"epoch": 1, "pos": 3, "n": 10, "seed": 3, "shuffle": True}
    assert drawn == ref.order(0)[7:].tolist() + ref.order(1)[:3].tolist()
    assert ref.order(0).tolist() != ref.order(1).tolist()


def test_cursor_without_shuffle_and_small_pool():
    c = DataCursor(3, shuffle=False)
    assert c.take(7) == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ValueError):
        DataCursor(4).restore({"epoch": 0, "pos": 0, "n": 5, "seed": 0, "shuffle": True})


class _TinyPolicy:
    """Duck-typed policy with a real torch module; save/load via safetensors like HFPolicy."""

    def __init__(self, seed):
        torch.manual_seed(seed)
        self.model = torch.nn.Linear(4, 3)

    def save(self, d):
        from safetensors.torch import save_file

        d.mkdir(parents=True, exist_ok=True)
        save_file(dict(self.model.state_dict()), str(d / "w.safetensors"))

    def load(self, d):
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(str(d / "w.safetensors")))


def _step(policy, opt):
    loss = policy.model(torch.ones(2, 4)).pow(2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss)


def test_checkpoint_roundtrip_is_exact_and_pruned(tmp_path):
    p = _TinyPolicy(0)
    opt = torch.optim.AdamW(p.model.parameters(), lr=0.1)
    for step in range(3):
        _step(p, opt)
        save_checkpoint(tmp_path, step, p, opt, {"cursor": {"epoch": 0, "pos": step}}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1, 2]  # only the newest two
    # continue the original for two more steps
    cont = [_step(p, opt) for _ in range(2)]

    q = _TinyPolicy(99)  # different init: everything must come from the checkpoint
    opt2 = torch.optim.AdamW(q.model.parameters(), lr=0.1)
    ck = latest_checkpoint(tmp_path)
    assert ck.step == 2 and ck.state["cursor"] == {"epoch": 0, "pos": 2}
    state = load_checkpoint(ck, q, opt2)
    assert state["step"] == 2
    assert [_step(q, opt2) for _ in range(2)] == cont  # bit-exact continuation


def test_rng_state_restored(tmp_path):
    p = _TinyPolicy(0)
    opt = torch.optim.AdamW(p.model.parameters(), lr=0.1)
    torch.manual_seed(7)
    np.random.seed(7)
    save_checkpoint(tmp_path, 0, p, opt, {}, keep=1)
    after = (torch.rand(2), np.random.rand())
    torch.manual_seed(0)
    np.random.seed(0)
    load_checkpoint(latest_checkpoint(tmp_path), p, opt)
    again = (torch.rand(2), np.random.rand())
    assert torch.equal(after[0], again[0]) and after[1] == again[1]


def test_partial_checkpoint_is_invisible(tmp_path):
    p = _TinyPolicy(0)
    opt = torch.optim.AdamW(p.model.parameters(), lr=0.1)
    save_checkpoint(tmp_path, 0, p, opt, {}, keep=3)
    # a crash while writing step 1 leaves a temp dir and an incomplete step dir without state.json
    (tmp_path / "checkpoints" / ".tmp-step=000001-999").mkdir()
    (tmp_path / "checkpoints" / "step=000002").mkdir()
    assert latest_checkpoint(tmp_path).step == 0
    clean_partial(tmp_path)
    assert not (tmp_path / "checkpoints" / ".tmp-step=000001-999").exists()
    # rewriting an existing step (after a resume) replaces it
    _step(p, opt)
    save_checkpoint(tmp_path, 0, p, opt, {"x": 1}, keep=3)
    assert json.loads((tmp_path / "checkpoints" / "step=000000" / "state.json").read_text())["x"] == 1


def test_a_checkpoint_file_that_does_not_load_is_one_line_naming_it(tmp_path):
    """issue 23: a damaged checkpoint says which file and what to do; a broken state.json is set aside
    and the checkpoint before it is used (taorl.train.resume prints the note)."""
    from taorl.errors import UserError

    p = _TinyPolicy(0)
    opt = torch.optim.AdamW(p.model.parameters(), lr=0.1)
    for step in range(2):
        save_checkpoint(tmp_path, step, p, opt, {"cursor": {"epoch": 0, "pos": step}}, keep=2)
    ck = latest_checkpoint(tmp_path)
    opt_file = ck.path / "optimizer.pt"
    opt_file.write_bytes(opt_file.read_bytes()[:100])
    with pytest.raises(UserError) as e:
        load_checkpoint(ck, _TinyPolicy(1), torch.optim.AdamW(_TinyPolicy(1).model.parameters(), lr=0.1))
    msg = str(e.value)
    assert msg.startswith(f"checkpoint {ck.path}: optimizer.pt does not load (") and "\n" not in msg
    assert msg.endswith("move that directory away to resume from the checkpoint before it")

    (ck.path / "state.json").write_text('{"step": 1, "cur')
    notes = []
    older = latest_checkpoint(tmp_path, notes)
    assert older.step == 0 and older.state["cursor"] == {"epoch": 0, "pos": 0}
    assert notes == ["checkpoint step=000001: state.json unreadable (Unterminated string starting at: line 1 "
                     "column 13 (char 12)); kept as step=000001.corrupt, resuming from the checkpoint before it"]
    assert (tmp_path / "checkpoints" / "step=000001.corrupt" / "optimizer.pt").is_file()  # kept, not deleted
    assert [s for s, _ in list_checkpoints(tmp_path)] == [0]
