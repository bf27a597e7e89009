"""An exponential moving average of a model's weights, as timm's ModelEmaV3 keeps it: validation,
the best epoch's weights and inference use the average, training goes on with the live weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """``model``'s parameters and buffers averaged after optimizer steps: each update moves the
    average a share 1 - decay towards the live weights (integer buffers are copied). With
    ``warmup`` the decay grows with the updates, 1 - (1 + updates) ** -2/3 capped at ``decay``
    (timm's warm-up), so that early averages do not hold on to the random initial weights."""

    WARMUP_POWER = 2 / 3

    def __init__(self, model: nn.Module, decay: float, warmup: bool, every: int) -> None:
        self.decay, self.warmup, self.every = decay, warmup, every
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0  # averaging steps taken, counted on the host
        self.steps = 0  # optimizer steps seen
        self._pairs = [(mine, live) for mine, live in zip(self.model.state_dict().values(),
                                                            model.state_dict().values(), strict=True)]
        self._floating = [pair for pair in self._pairs if pair[0].is_floating_point()]
        self._others = [pair for pair in self._pairs if not pair[0].is_floating_point()]

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, 1 - (1 + self.updates) ** -self.WARMUP_POWER)

    @torch.no_grad()
    def step(self) -> None:
        """After an optimizer step: average every ``every``-th one in, a fixed number of operations
        (one multi-tensor interpolation, one multi-tensor copy) whatever the model's size."""
        self.steps += 1
        if self.steps % self.every:
            return
        weight = 1 - self.current_decay()
        if self._floating:
            torch._foreach_lerp_([mine for mine, _ in self._floating], [live for _, live in self._floating], weight)
        if self._others:
            torch._foreach_copy_([mine for mine, _ in self._others], [live for _, live in self._others])
        self.updates += 1

    def state_dict(self) -> dict:
        return {"weights": self.model.state_dict(), "updates": self.updates, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates, self.steps = int(state["updates"]), int(state["steps"])
