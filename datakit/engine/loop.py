"""One epoch of training and one evaluation pass, for any task.

Like torchvision's ``references/``: two plain functions a reader follows top to bottom. The task
(``datakit.tasks``) turns a batch into a loss and outputs (``task.step``) and outputs into named
metrics (its evaluator); these functions only run the batches, step the optimizer, keep the
running loss and stop at a loss that is not finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from datakit import distributed


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite at ``batch`` (1-based) of the epoch."""

    def __init__(self, value: float, batch: int) -> None:
        super().__init__(f"loss {value} at batch {batch}")
        self.value = value
        self.batch = batch


@dataclass
class LossMeter:
    """Sums of each named loss part over the images seen; means after ``reduce`` across processes."""

    sums: dict[str, float] = field(default_factory=dict)
    count: float = 0.0

    def add(self, parts: dict[str, float], n: int) -> None:
        for name, value in parts.items():
            self.sums[name] = self.sums.get(name, 0.0) + value * n
        self.count += n

    def reduce(self, ctx: distributed.Context) -> "LossMeter":
        names = sorted(self.sums)
        summed = distributed.all_sum(ctx, [self.sums[n] for n in names] + [self.count])
        return LossMeter(dict(zip(names, summed[:-1])), summed[-1])

    def means(self) -> dict[str, float]:
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}

    @property
    def loss(self) -> float:
        return self.sums.get("loss", 0.0) / max(self.count, 1)


def _size(targets: Any) -> int:
    return len(targets)


def train_one_epoch(
    model: nn.Module,
    task: Any,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    autocast: Callable[[], Any],
    scaler: torch.amp.GradScaler | None,
    grad_clip: float | None,
    evaluator: Any,
    ctx: distributed.Context,
    on_batch: Callable[[float, Callable[[], dict[str, float]]], None] | None = None,
) -> LossMeter:
    """Train on every batch of ``loader``; the evaluator sees the outputs. Raises NonFiniteLoss."""
    model.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    losses = LossMeter()
    for batch_index, batch in enumerate(loader, start=1):
        with autocast():
            loss, parts, outputs, targets = task.step(model, batch, device, train=True)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
        values = {name: float(part.detach()) for name, part in parts.items()}
        value = values["loss"] if "loss" in values else float(loss.detach())
        if ctx.active:  # every process must stop at the same batch, or the others hang
            value = distributed.all_sum(ctx, [value])[0] / ctx.world
        if not math.isfinite(value):
            raise NonFiniteLoss(value, batch_index)
        losses.add(values, _size(targets))
        evaluator.update(outputs.detach(), targets)
        if on_batch is not None:
            on_batch(losses.loss, evaluator.compute)
    return losses


def evaluate(
    model: nn.Module,
    task: Any,
    loader: Any,
    device: torch.device,
    autocast: Callable[[], Any],
    evaluator: Any,
) -> LossMeter:
    """One pass without gradients; the evaluator accumulates the outputs."""
    model.eval()
    losses = LossMeter()
    with torch.inference_mode():
        for batch in loader:
            with autocast():
                loss, parts, outputs, targets = task.step(model, batch, device, train=False)
            losses.add({name: float(part) for name, part in parts.items()}, _size(targets))
            evaluator.update(outputs, targets)
    return losses
