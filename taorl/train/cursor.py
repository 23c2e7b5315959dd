"""A deterministic, resumable cursor over the training problems.

Epoch e visits the pool in the order permutation(seed, e) (or in file order without shuffle);
`take(n)` returns the next n problems, running into the next epoch when one ends. The state is two
integers, saved in every checkpoint, so a resumed run draws exactly the problems it would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DataCursor:
    n: int  # pool size
    seed: int = 0
    shuffle: bool = True
    epoch: int = 0
    pos: int = 0  # next index into this epoch's order

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("DataCursor needs at least one problem")
        self._order_epoch = -1
        self._order: np.ndarray | None = None

    def order(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, epoch])
                self._order = rng.permutation(self.n)
            else:
                self._order = np.arange(self.n)
            self._order_epoch = epoch
        return self._order

    def take(self, k: int) -> list[int]:
        """Indices of the next k problems (a pool smaller than k repeats across epochs)."""
        out: list[int] = []
        while len(out) < k:
            order = self.order(self.epoch)
            m = min(k - len(out), self.n - self.pos)
            out.extend(int(i) for i in order[self.pos:self.pos + m])
            self.pos += m
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "n": self.n, "seed": self.seed, "shuffle": self.shuffle}

    def restore(self, state: dict) -> None:
        if state["n"] != self.n:
            raise ValueError(f"checkpoint was taken over {state['n']} problems, the data now has {self.n}")
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
