"""`datakit train`: a classifier from a manifest, into a run directory.

The run directory holds everything needed to trust, resume and reuse the result::

    config.yaml          the full resolved config (every key, defaults included)
    run.json             manifest, classes, preprocessing (normalization statistics), status, results
    splits.csv           which image id went to which split (generated splits included)
    metrics.csv          one row per epoch: train/val loss and accuracy, learning rate, seconds
    curves.png           loss and accuracy, train vs val
    checkpoints/best.pt  weights with the best validation metric
    checkpoints/last.pt  end of the last epoch (or the moment of Ctrl-C): what --resume continues

Under ``torchrun --nproc_per_node N -m datakit train ...`` every process trains a shard of each
epoch with DDP and the first process writes the run directory.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from datakit import __version__
from datakit import config as cfg
from datakit import distributed
from datakit.checkpoint import load_initial_weights, load_model_state, read_checkpoint, save_checkpoint
from datakit.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    STATS_SAMPLE,
    EpochSampler,
    ImageClassificationDataset,
    LabelledSplits,
    Preprocess,
    auto_channels,
    balanced_class_weights,
    balanced_sample_weights,
    channel_stats,
    decode_all,
    fits_in_cache,
    screen_files,
    skipped_note,
    image_size,
    make_loader,
    prepare_classification,
)
from datakit.engine.device import autocast as make_autocast, select_device  # noqa: F401 - select_device: API
from datakit.engine.rundir import RunDir
from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from datakit.models import build_model, get_family
from datakit.online_augment import build_transform
from datakit.train_display import TrainingDisplay

METRIC_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")


class TrainingDiverged(DatakitError):
    """The loss became NaN or infinite; training stopped and the best checkpoint was kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the last checkpoint was saved; ``message`` says how to resume."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.message = message
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    run_dir: Path
    monitor: str
    best_metric: float | None
    best_epoch: int | None
    epochs_run: int
    history: list[dict[str, float]]
    test_accuracy: float | None
    status: str  # completed | early_stopped
    classes: list[str]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best_checkpoint(self) -> Path:
        return RunDir(self.run_dir).best

    @property
    def last_checkpoint(self) -> Path:
        return RunDir(self.run_dir).last

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir), "status": self.status, "monitor": self.monitor,
            "best_metric": self.best_metric, "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
            "test_accuracy": self.test_accuracy, "classes": self.classes, "seconds": round(self.seconds, 3),
            "best_checkpoint": str(self.best_checkpoint), "notes": self.notes, "history": self.history,
        }


# ---------------------------------------------------------------------------------------------
# setup helpers


def _optimizer(config: cfg.OptimConfig, params: Any) -> torch.optim.Optimizer:
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


class _Schedule:
    """Per-epoch learning rates; its state is plain numbers so checkpoints stay weights_only."""

    def __init__(self, config: cfg.TrainConfig, optimizer: torch.optim.Optimizer) -> None:
        self.config = config
        self.optimizer = optimizer
        self.plateau = None
        if config.schedule.name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max" if config.train.monitor == "val_accuracy" else "min",
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


def _preprocess_for(config: cfg.TrainConfig, data: LabelledSplits) -> Preprocess:
    height, width = image_size(config.data)
    family = get_family(config.model.name)
    channels = config.data.channels
    if channels == "auto":
        channels = family.channels or auto_channels(data.frames["train"])
    elif family.channels and channels != family.channels:
        raise DatakitError(f"model '{config.model.name}' needs {family.channels}-channel input; "
                           f"data.channels is {channels} (use auto)")
    return Preprocess(height=height, width=width, channels=int(channels), resize=config.data.resize)


def _normalization(config: cfg.TrainConfig, preprocess: Preprocess, train_images: Any, train_paths: list[Path]) -> None:
    """Fill preprocess.mean/std: from the train split (all of it when cached, else a sample)."""
    mode = config.data.normalize
    if mode == "none":
        preprocess.mean, preprocess.std = [], []
    elif mode == "imagenet":
        if preprocess.channels == 3:
            preprocess.mean, preprocess.std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        else:
            preprocess.mean = [sum(IMAGENET_MEAN) / 3]
            preprocess.std = [sum(IMAGENET_STD) / 3]
    else:
        if train_images is None:
            generator = torch.Generator().manual_seed(config.seed)
            pick = torch.randperm(len(train_paths), generator=generator)[:STATS_SAMPLE].tolist()
            failures: dict[int, str] = {}
            train_images = decode_all([train_paths[i] for i in sorted(pick)], preprocess, config.data.workers,
                                      failures=failures)
            if failures:
                train_images = np.delete(train_images, sorted(failures), axis=0)
        preprocess.mean, preprocess.std = channel_stats(train_images)


def read_run_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    return RunDir(run_dir).read_info()


# ---------------------------------------------------------------------------------------------
# one pass over a loader


@dataclass
class _Totals:
    loss: float = 0.0
    correct: float = 0.0
    count: float = 0.0

    def reduce(self, ctx: distributed.Context) -> "_Totals":
        return _Totals(*distributed.all_sum(ctx, [self.loss, self.correct, self.count]))

    @property
    def mean_loss(self) -> float:
        return self.loss / max(self.count, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1)


def _evaluate_pass(model: nn.Module, loader: Any, criterion: nn.Module, device: torch.device,
                   autocast: Callable[[], Any]) -> _Totals:
    totals = _Totals()
    model.eval()
    with torch.inference_mode():
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                logits = model(x)
                loss = criterion(logits.float(), y)
            totals.loss += float(loss) * len(y)
            totals.correct += float((logits.argmax(1) == y).sum())
            totals.count += len(y)
    return totals


# ---------------------------------------------------------------------------------------------
# the command


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Schedulers (SLURM, Kubernetes, torchrun) stop a job with SIGTERM: treat it as Ctrl-C, so the
    last checkpoint is saved and ``--resume`` can continue."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(
    manifest: str | os.PathLike[str] | None = None,
    config: cfg.TrainConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    show_progress: bool = True,
    callback: Callable[[dict[str, float]], None] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train a classifier on ``manifest`` into the run directory ``output``.

    ``config`` is a YAML path, a dict or a ``TrainConfig``; ``overrides`` set single keys by
    dotted name (``**{"optim.lr": 0.01}``), ``__`` name (``optim__lr=0.01``) or alias
    (``epochs=5``). ``resume=True`` continues ``output`` from its last checkpoint with its saved
    config (overrides such as a larger ``epochs`` still apply). ``callback`` receives each
    epoch's record and may raise to stop (a sweep's pruning).
    """
    started = time.perf_counter()
    if output is None:
        raise DatakitError("train needs an output run directory (-o runs/NAME)")
    run_dir = Path(output)
    RunDir(run_dir).check_new(resume)
    resume_state: dict[str, Any] | None = None
    fixed_splits = None
    if resume:
        resume_state = read_checkpoint(RunDir(run_dir).last)
        base = cfg.from_dict(resume_state["config"])
        config_used = cfg.resolve_config(base, overrides)
        if manifest is None:
            manifest = read_run_info(run_dir)["manifest"]
        fixed_splits = RunDir(run_dir).read_splits()
    else:
        if manifest is None:
            raise DatakitError("train needs a manifest")
        config_used = cfg.resolve_config(config, overrides)
    get_family(config_used.model.name)  # an unknown model fails before any image is read

    device = select_device(config_used.train.device, int(os.environ.get("LOCAL_RANK", "0")))
    ctx = distributed.setup(device.type)
    threads = torch.get_num_threads()  # train.threads applies to this run only, not to the caller after
    try:
        # every process has checked the output folder before the first one writes into it
        distributed.barrier(ctx)
        with _sigterm_as_interrupt():
            return _train(manifest, config_used, run_dir, device, ctx, resume_state, fixed_splits,
                          show_progress and ctx.is_main, callback, started)
    finally:
        torch.set_num_threads(threads)
        distributed.teardown(ctx)


def _train(
    manifest_path: str | os.PathLike[str],
    config: cfg.TrainConfig,
    run_dir: Path,
    device: torch.device,
    ctx: distributed.Context,
    resume_state: dict[str, Any] | None,
    fixed_splits: pd.DataFrame | None,
    show: bool,
    callback: Callable[[dict[str, float]], None] | None,
    started: float,
) -> TrainResult:
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    elif ctx.active and device.type == "cpu":
        # N processes on one machine would otherwise each start one thread per core
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // ctx.local_world))
    if ctx.active:
        # a layout hint DDP prints for 1-channel convolutions; it does not affect results
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    torch.manual_seed(config.seed)
    run = RunDir(run_dir)
    display = TrainingDisplay(show, config.train.epochs)
    notes: list[str] = []

    manifest = load_manifest(manifest_path)
    data = prepare_classification(manifest, config.data, config.seed, fixed_splits,
                                  classes=resume_state["classes"] if resume_state else None)
    notes += data.notes
    if resume_state:
        preprocess = Preprocess.from_dict(resume_state["preprocess"])
    else:
        preprocess = _preprocess_for(config, data)
    paths = {name: [data.root / p for p in frame["path"]] for name, frame in data.frames.items()}
    counts = {name: len(frame) for name, frame in data.frames.items()}
    cache = fits_in_cache(sum(counts.values()), preprocess, config.data.cache)

    with display:
        for note in notes:
            display.note(f"[cyan]note:[/] {note}")
        images: dict[str, Any] = {name: None for name in paths}
        failed: dict[str, dict[int, str]] = {name: {} for name in paths}
        if cache:
            display.start_task("loading images", sum(counts.values()))
            for name in paths:
                if counts[name]:
                    images[name] = decode_all(paths[name], preprocess, config.data.workers, on_batch=display.advance,
                                              failures=failed[name])
        else:  # decoded batch by batch later: leave out what cannot be decoded now, from the headers
            failed = {name: screen_files(paths[name]) for name in paths}
        for name, failures in failed.items():
            if not failures:
                continue  # one bad file never stops a run: it is left out, counted and reported
            keep = [i for i in range(len(paths[name])) if i not in failures]
            data.frames[name] = data.frames[name].iloc[keep].reset_index(drop=True)
            paths[name] = [paths[name][i] for i in keep]
            images[name] = images[name][keep] if images[name] is not None else None
            counts[name] = len(keep)
            notes.append(skipped_note(failures, name))
            display.note(f"[yellow]skipped:[/] {notes[-1]}")
        for name in ("train", "val"):
            if not counts[name]:
                raise DatakitError(f"{manifest_path}: no image of split '{name}' could be decoded; see the notes above")
        if not resume_state:
            _normalization(config, preprocess, images["train"], paths["train"])
        transform = build_transform(config.augment, seed=config.seed)
        datasets = {
            name: ImageClassificationDataset(paths[name], data.frames[name]["target"].to_numpy(), preprocess,
                                             transform if name == "train" else None, images[name])
            for name in paths if counts[name]
        }
        del images  # the datasets hold what they need; a second reference would pin the memory
        num_classes = len(data.classes)
        train_targets = data.frames["train"]["target"].to_numpy()
        weights = balanced_sample_weights(train_targets, num_classes) if config.data.balance == "sampler" else None
        samplers = {
            name: EpochSampler(len(ds), shuffle=name == "train", weights=weights if name == "train" else None,
                               rank=ctx.rank, world=ctx.world, seed=config.seed, pad=name == "train")
            for name, ds in datasets.items()
        }
        pin = device.type == "cuda"
        loaders = {name: make_loader(ds, config.train.batch_size, samplers[name], config.data.workers, pin)
                   for name, ds in datasets.items()}

        model = build_model(config.model, preprocess.channels, num_classes, (preprocess.height, preprocess.width))
        if config.model.weights and not resume_state:
            notes.append(load_initial_weights(model, config.model.weights))
            display.note(f"[cyan]note:[/] {notes[-1]}")
        if resume_state:
            load_model_state(model, resume_state["model"], run.last)
        model.to(device)
        core = model  # the unwrapped model: its state dict has no DDP "module." prefix
        if ctx.active:
            model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        class_weights = balanced_class_weights(train_targets, num_classes).to(device) \
            if config.data.balance == "weights" else None
        criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=config.train.label_smoothing)
        eval_criterion = nn.CrossEntropyLoss(weight=class_weights)
        optimizer = _optimizer(config.optim, core.parameters())
        schedule = _Schedule(config, optimizer)
        autocast, scaler = make_autocast(device, config.train.amp)

        history: list[dict[str, float]] = []
        start_epoch, best_metric, best_epoch, bad_epochs = 1, None, None, 0
        if resume_state:
            optimizer.load_state_dict(resume_state["optimizer"])
            schedule.load_state_dict(resume_state.get("schedule") or {})
            if scaler is not None and resume_state.get("scaler"):
                scaler.load_state_dict(resume_state["scaler"])
            if isinstance(resume_state.get("rng"), torch.Tensor):
                torch.set_rng_state(resume_state["rng"])
            history = list(resume_state.get("history") or [])
            start_epoch = int(resume_state["epoch"]) + 1
            best_metric, best_epoch = resume_state.get("best_metric"), resume_state.get("best_epoch")
            bad_epochs = int(resume_state.get("bad_epochs") or 0)
            patience = config.train.patience
            if patience is not None and bad_epochs >= patience:
                bad_epochs = 0
                notes.append("the run had stopped early; resuming with the early-stopping count reset")
            if start_epoch > config.train.epochs:
                raise DatakitError(f"{run_dir}: already trained {start_epoch - 1} epochs (train.epochs = "
                                   f"{config.train.epochs}); pass a larger --epochs to train longer")
            display.note(f"resuming {run_dir} at epoch {start_epoch}")

        info = {
            "datakit_version": __version__, "torch_version": torch.__version__, "task": "classification",
            "manifest": str(manifest.location), "classes": data.classes, "category_ids": data.category_ids,
            "preprocess": preprocess.as_dict(),
            "split_source": read_run_info(run_dir).get("split_source", "run") if resume_state else data.plan.source,
            "images": counts, "device": str(device), "processes": ctx.world, "monitor": config.train.monitor,
            "cache": cache, "notes": notes, "status": "running",
        }
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg.dump_yaml(config))
            if fixed_splits is None:
                run.write_splits(data.split_table())
            run.write_info(info)
        distributed.barrier(ctx)

        def payload(epoch: int, partial: bool = False) -> dict[str, Any]:
            return {
                "datakit_version": __version__, "epoch": epoch, "partial_epoch": partial,
                "model": core.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {}, "rng": torch.get_rng_state(),
                "best_metric": best_metric, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "history": history, "config": cfg.to_dict(config), "classes": data.classes,
                "category_ids": data.category_ids, "preprocess": preprocess.as_dict(),
            }

        def finish(status: str, **extra: Any) -> None:
            if not ctx.is_main:
                return
            if history:
                from datakit.plots import training_curves

                training_curves(history, run.curves, title=run_dir.name)
            info.update(status=status, epochs_run=len(history), best_epoch=best_epoch, best_metric=best_metric,
                        seconds=round(time.perf_counter() - started, 3), **extra)
            run.write_info(info)

        monitor = config.train.monitor
        higher_is_better = monitor == "val_accuracy"
        status = "completed"
        stopped_by_callback: str | None = None
        epoch = start_epoch - 1
        train_loader = loaders["train"]
        try:
            for epoch in range(start_epoch, config.train.epochs + 1):
                epoch_start = time.perf_counter()
                samplers["train"].set_epoch(epoch)
                if config.data.workers == 0:
                    datasets["train"].reseed(config.seed * 1_000_003 + epoch)
                schedule.start_epoch(epoch - 1)
                display.start_epoch(epoch, len(train_loader))
                model.train()
                totals = _Totals()
                for batch_index, (x, y) in enumerate(train_loader, start=1):
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    with autocast():
                        logits = model(x)
                        loss = criterion(logits.float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        if config.train.grad_clip:
                            scaler.unscale_(optimizer)
                            nn.utils.clip_grad_norm_(core.parameters(), config.train.grad_clip)
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        if config.train.grad_clip:
                            nn.utils.clip_grad_norm_(core.parameters(), config.train.grad_clip)
                        optimizer.step()
                    loss_value = float(loss.detach())
                    if ctx.active:  # every process must stop at the same batch, or the others hang
                        loss_value = distributed.all_sum(ctx, [loss_value])[0] / ctx.world
                    if not math.isfinite(loss_value):
                        kept = (f"best checkpoint (epoch {best_epoch}) kept at {run.best}"
                                if best_epoch else "no checkpoint was saved (it diverged in the first epoch)")
                        finish("diverged", diverged_at={"epoch": epoch, "batch": batch_index})
                        raise TrainingDiverged(
                            f"loss became {loss_value} at epoch {epoch}, batch {batch_index}: training stopped; "
                            f"{kept}; try a lower optim.lr (now {config.optim.lr:g}) or train.grad_clip")
                    totals.loss += loss_value * len(y)
                    totals.correct += float((logits.argmax(1) == y).sum())
                    totals.count += len(y)
                    display.batch(totals.mean_loss, totals.accuracy)
                train_totals = totals.reduce(ctx)
                display.phase("validating")
                # the unwrapped model: DDP's forward is a collective, and shards may differ in batch count
                val_totals = _evaluate_pass(core, loaders["val"], eval_criterion, device, autocast).reduce(ctx)
                record = {
                    "epoch": epoch, "train_loss": train_totals.mean_loss, "train_accuracy": train_totals.accuracy,
                    "val_loss": val_totals.mean_loss, "val_accuracy": val_totals.accuracy,
                    "lr": optimizer.param_groups[0]["lr"], "seconds": 0.0,
                }
                value = record[monitor]
                if not math.isfinite(value):
                    finish("diverged", diverged_at={"epoch": epoch, "batch": None})
                    raise TrainingDiverged(f"validation {monitor} became {value} at epoch {epoch}: training stopped; "
                                           f"best checkpoint (epoch {best_epoch}) kept")
                delta = config.train.min_delta
                improved = best_metric is None or (
                    value > best_metric + delta if higher_is_better else value < best_metric - delta)
                if improved:
                    best_metric, best_epoch, bad_epochs = value, epoch, 0
                else:
                    bad_epochs += 1
                schedule.end_epoch(value)
                record["seconds"] = time.perf_counter() - epoch_start
                history.append(record)
                if ctx.is_main:
                    if improved:
                        save_checkpoint(run.best, payload(epoch))
                    save_checkpoint(run.last, payload(epoch))
                # checkpoint writing is part of what an epoch costs
                record["seconds"] = time.perf_counter() - epoch_start
                if ctx.is_main:
                    run.write_metrics(history, METRIC_COLUMNS)
                display.end_epoch(record, improved, monitor)
                if callback is not None:
                    try:
                        callback(dict(record))
                    except BaseException as exc:
                        # a sweep's pruning, say: a deliberate stop, not a failure of training
                        stopped_by_callback = f"{type(exc).__name__}: {exc}"
                        raise
                if config.train.patience is not None and bad_epochs >= config.train.patience:
                    status = "early_stopped"
                    display.note(f"early stopping: {monitor} did not improve for {bad_epochs} epochs "
                                 f"(best {best_metric:.4f} at epoch {best_epoch})")
                    break
        except KeyboardInterrupt:
            completed = history[-1]["epoch"] if history else start_epoch - 1
            last = run.last
            if ctx.is_main:
                # the weights as they are now; resuming restarts the interrupted epoch from them
                save_checkpoint(last, payload(int(completed), partial=True))
                run.write_metrics(history, METRIC_COLUMNS)
            finish("interrupted")
            raise TrainingInterrupted(
                f"training interrupted in epoch {int(completed) + 1}; checkpoint saved to {last}; "
                f"continue with: datakit train {manifest.location} -o {run_dir} --resume", last) from None
        except TrainingDiverged:
            raise
        except BaseException as exc:
            if stopped_by_callback:
                finish("stopped_by_callback", note=stopped_by_callback)
            else:
                finish("failed", error=f"{type(exc).__name__}: {exc}")
            raise

        test_accuracy = None
        if "test" in loaders and best_epoch is not None:
            display.phase("testing the best checkpoint")
            if ctx.is_main:
                core.load_state_dict(read_checkpoint(run.best)["model"])
            if ctx.active:
                # only the main process surely has the file (several machines); the weights travel
                for tensor in core.state_dict().values():
                    torch.distributed.broadcast(tensor, src=0)
            test_accuracy = _evaluate_pass(core, loaders["test"], eval_criterion, device, autocast).reduce(ctx).accuracy
        finish(status, test_accuracy=test_accuracy)
    # nobody leaves the process group while the first process still writes the run directory
    distributed.barrier(ctx)
    result = TrainResult(
        run_dir=run_dir, monitor=monitor, best_metric=best_metric, best_epoch=best_epoch,
        epochs_run=len(history), history=history, test_accuracy=test_accuracy, status=status,
        classes=data.classes, notes=notes, seconds=time.perf_counter() - started,
    )
    return result
