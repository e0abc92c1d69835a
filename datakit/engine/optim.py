"""Optimizer and learning-rate schedule of a run, from its config (task-agnostic)."""

from __future__ import annotations

import math
from typing import Any

import torch

from datakit import config as cfg
from datakit.tasks import higher_is_better


def make_optimizer(config: cfg.OptimConfig, params: Any) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(schedule: cfg.ScheduleConfig, epoch: int, epochs: int, base_lr: float) -> float:
    """Multiplier of the base learning rate in 0-based ``epoch`` (cosine, step, none; with warm-up)."""
    if epoch < schedule.warmup_epochs:
        return 0.1 + 0.9 * epoch / schedule.warmup_epochs
    if schedule.name == "cosine":
        span = max(1, epochs - schedule.warmup_epochs)
        progress = (epoch - schedule.warmup_epochs) / span
        floor = schedule.min_lr / base_lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule.name == "step":
        return schedule.gamma ** ((epoch - schedule.warmup_epochs) // schedule.step_size)
    return 1.0


class Schedule:
    """Per-epoch learning rates; its state is plain numbers so checkpoints stay weights_only."""

    def __init__(self, config: cfg.TrainConfig, optimizer: torch.optim.Optimizer, monitor: str) -> None:
        self.config = config
        self.optimizer = optimizer
        self.plateau = None
        if config.schedule.name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max" if higher_is_better(monitor) else "min",
                factor=config.schedule.gamma, patience=config.schedule.patience, min_lr=config.schedule.min_lr)

    def start_epoch(self, epoch: int) -> None:
        """Set the learning rate for 0-based ``epoch`` (plateau adjusts itself after each epoch)."""
        if self.plateau is not None:
            if epoch < self.config.schedule.warmup_epochs:
                for group in self.optimizer.param_groups:
                    group["lr"] = self.config.optim.lr * lr_factor(self.config.schedule, epoch, 1, self.config.optim.lr)
            return
        factor = lr_factor(self.config.schedule, epoch, self.config.train.epochs, self.config.optim.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.optim.lr * factor

    def end_epoch(self, metric: float) -> None:
        if self.plateau is not None:
            self.plateau.step(metric)

    def state_dict(self) -> dict[str, Any]:
        return self.plateau.state_dict() if self.plateau is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.plateau is not None and state:
            self.plateau.load_state_dict(state)
