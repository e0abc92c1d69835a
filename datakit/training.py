"""`datakit train`: a model for the manifest's task, into a run directory.

This module picks the task (``datakit.tasks``), then runs the epochs with the engine's plain
functions (``datakit.engine.loop``); the run directory's layout belongs to ``RunDir``::

    config.yaml          the full resolved config (every key, defaults included; task resolved)
    run.json             task, manifest, classes, preprocessing (normalization statistics), status, results
    splits.csv           which image id went to which split (generated splits included)
    metrics.csv          one row per epoch: train/val loss and the task's metrics, learning rate, seconds
    curves.png           loss and metrics, train vs val
    checkpoints/best.pt  weights with the best validation metric
    checkpoints/last.pt  end of the last epoch (or the moment of Ctrl-C): what --resume continues

Under ``torchrun --nproc_per_node N -m datakit train ...`` every process trains a shard of each
epoch with DDP and the first process writes the run directory.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch
from torch import nn

from datakit import __version__
from datakit import config as cfg
from datakit import device_batches, distributed
from datakit.atomic import copy_atomic
from datakit.checkpoint import load_initial_weights, load_model_state, read_checkpoint, save_checkpoint
from datakit.data import EpochSampler, Preprocess, make_loader
from datakit.engine.signs import LearningSigns
from datakit.engine.device import autocast as make_autocast, select_device  # noqa: F401 - select_device: API
from datakit.engine.loop import NonFiniteLoss, evaluate, train_one_epoch
from datakit.engine.optim import Schedule, lr_factor, make_optimizer  # noqa: F401 - lr_factor: API
from datakit.engine.rundir import RunDir
from datakit.errors import DatakitError
from datakit.interrupts import sigterm_as_interrupt
from datakit.manifest import Manifest, load_manifest
from datakit.manifest_header import check_output_folder, takes_allow_outside
from datakit.models import get_family
from datakit.tasks import AUTO, check_monitor, get_spec, get_task, higher_is_better, resolve_task
from datakit.train_display import TrainingDisplay


def metric_columns(metrics: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """metrics.csv's columns for a task's metric names."""
    return ("epoch", "train_loss", *(f"train_{m}" for m in metrics), "val_loss", *(f"val_{m}" for m in metrics),
            "lr", "seconds")


METRIC_COLUMNS = metric_columns(get_spec("classification").metrics)


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
    task: str = "classification"
    task_reason: str = ""
    test_metrics: dict[str, float] | None = None  # the task's metrics on test, best checkpoint
    derived: list[dict[str, Any]] = field(default_factory=list)  # data-aware defaults: key, value, reason
    # not learning: kind, message, epochs it held, gone_from (the epoch from which it no longer held, or None)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best_checkpoint(self) -> Path:
        return RunDir(self.run_dir).best

    @property
    def last_checkpoint(self) -> Path:
        return RunDir(self.run_dir).last

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir), "task": self.task, "task_reason": self.task_reason, "status": self.status,
            "monitor": self.monitor, "best_metric": self.best_metric, "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run, "test_accuracy": self.test_accuracy, "test_metrics": self.test_metrics,
            "classes": self.classes, "seconds": round(self.seconds, 3),
            "best_checkpoint": str(self.best_checkpoint), "notes": self.notes, "derived": self.derived,
            "warnings": self.warnings, "history": self.history,
        }


def read_run_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    return RunDir(run_dir).read_info()


# ---------------------------------------------------------------------------------------------
# the command


def _task_source(config: Any, overrides: Mapping[str, Any], resume: bool) -> str:
    """Where the task was set, for the reason the run prints (an override is the CLI's --set)."""
    given = [value for key, value in overrides.items() if cfg.resolve_key(key) == "task"]
    if given:
        return f"with --set task={given[-1]}"
    if resume:
        return "in the run's saved config"
    if isinstance(config, (str, os.PathLike)):
        return f"in {config}"
    return "in the config"


@takes_allow_outside
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
    """Train a model for the manifest's task (config key ``task``) into the run directory ``output``.

    ``config`` is a YAML path, a dict or a ``TrainConfig``; ``overrides`` set single keys by
    dotted name (``**{"optim.lr": 0.01}``), ``__`` name (``optim__lr=0.01``) or alias
    (``epochs=5``). ``resume=True`` continues ``output`` from its last checkpoint with its saved
    config (overrides such as a larger ``epochs`` still apply). ``callback`` receives each
    epoch's record and may raise to stop (a sweep's pruning).
    """
    started = time.perf_counter()
    if output is None:
        raise DatakitError("train needs an output run directory (-o runs/NAME)")
    run = RunDir(output)
    run.check_new(resume)
    resume_state: dict[str, Any] | None = None
    fixed_splits = None
    if resume:
        resume_state = read_checkpoint(run.last)
        base = cfg.from_dict(resume_state["config"])
        config_used = cfg.resolve_config(base, overrides)
        if manifest is None:
            manifest = run.read_info()["manifest"]
        fixed_splits = run.read_splits()
    else:
        if manifest is None:
            raise DatakitError("train needs a manifest")
        config_used = cfg.resolve_config(config, overrides)
    loaded = load_manifest(manifest)
    if not resume:
        check_output_folder(output, "-o", loaded)
    task_name, task_reason = resolve_task(config_used.task, loaded, _task_source(config, overrides, resume))
    derivation = None
    if not resume:  # a resumed run keeps the values it was started with (its config.yaml has them all)
        from datakit.engine.defaults import derive_config

        config_used, derivation = derive_config(loaded, config_used, task_name)
    task_class = get_task(task_name)
    monitor = config_used.train.monitor
    if monitor == AUTO:
        monitor = get_spec(task_name).default_monitor
    check_monitor(task_name, monitor)
    get_family(config_used.model.name, task_name)  # an unknown model fails before any image is read

    device = select_device(config_used.train.device, int(os.environ.get("LOCAL_RANK", "0")))
    ctx = distributed.setup(device.type)
    threads = torch.get_num_threads()  # train.threads applies to this run only, not to the caller after
    import cv2

    cv2_threads = cv2.getNumThreads()
    if config_used.augment and config_used.data.workers == 0:
        # augmentation in this process: OpenCV's thread pool would fight torch's for the same cores
        cv2.setNumThreads(1)
    try:
        # every process has checked the output folder before the first one writes into it
        distributed.barrier(ctx)
        with sigterm_as_interrupt():
            return _train(loaded, task_class(config_used), task_reason, monitor, config_used, run, device, ctx,
                          resume_state,
                          fixed_splits, show_progress and ctx.is_main, callback, started, derivation)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
        distributed.teardown(ctx)


def _train(
    manifest: Manifest,
    task: Any,
    task_reason: str,
    monitor: str,
    config: cfg.TrainConfig,
    run: RunDir,
    device: torch.device,
    ctx: distributed.Context,
    resume_state: dict[str, Any] | None,
    fixed_splits: pd.DataFrame | None,
    show: bool,
    callback: Callable[[dict[str, float]], None] | None,
    started: float,
    derivation: Any = None,
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
    run_dir = run.path
    display = TrainingDisplay(show, config.train.epochs, metrics=task.metrics)
    notes: list[str] = []

    data = task.prepare(manifest, fixed_splits, classes=resume_state["classes"] if resume_state else None)
    notes += data.notes
    preprocess = Preprocess.from_dict(resume_state["preprocess"]) if resume_state else task.preprocess(data)

    with display:
        display.note(f"[cyan]task:[/] {task.name} ({task_reason})")
        for note in notes:
            display.note(f"[cyan]note:[/] {note}")
        datasets = task.datasets(data, preprocess, display, fill_normalization=not resume_state, notes=notes)
        counts = {name: len(frame) for name, frame in data.frames.items()}
        weights = task.sample_weights(data)
        samplers = {
            name: EpochSampler(len(ds), shuffle=name == "train", weights=weights if name == "train" else None,
                               rank=ctx.rank, world=ctx.world, seed=config.seed, pad=name == "train")
            for name, ds in datasets.items()
        }
        on_device = device_batches.plan(datasets, device, config.data.on_device, task.name)
        if derivation is not None and derivation.derived:
            from datakit.render_training import derived_table

            if "train" in on_device.splits:  # shown after the plan, so the table says what the run will do
                unused = f"not used while the cached images are batched on {device.type} (data.on_device)"
                derivation.amend("data.workers", lambda why: f"{unused}; for a DataLoader: {why}")
            display.show(derived_table(derivation))
        if on_device.note:
            notes.append(on_device.note)
            display.note(f"[cyan]note:[/] {on_device.note}")
        pin = device.type == "cuda"
        loaders = {
            name: device_batches.DeviceBatches(ds, samplers[name], config.train.batch_size, device,
                                               on_device.augment if name == "train" else None, config.seed)
            if name in on_device.splits else
            make_loader(ds, config.train.batch_size, samplers[name], config.data.workers, pin)
            for name, ds in datasets.items()}

        model = task.build_model(preprocess, data)
        if config.model.weights and not resume_state:
            notes.append(load_initial_weights(model, config.model.weights))
            display.note(f"[cyan]note:[/] {notes[-1]}")
        if resume_state:
            load_model_state(model, resume_state["model"], run.last)
        model.to(device)
        core = model  # the unwrapped model: its state dict has no DDP "module." prefix
        if ctx.active:
            model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        task.setup_loss(data, device)
        optimizer = make_optimizer(config.optim, core.parameters())
        schedule = Schedule(config, optimizer, monitor)
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

        columns = metric_columns(task.metrics)
        info = {
            "datakit_version": __version__, "torch_version": torch.__version__, "task": task.name,
            "task_reason": task_reason, "metrics": list(task.metrics),
            "manifest": str(manifest.location), "classes": data.classes, "category_ids": data.category_ids,
            "preprocess": preprocess.as_dict(),
            "split_source": run.read_info().get("split_source", "run") if resume_state else data.plan.source,
            "images": counts, "device": str(device), "processes": ctx.world, "monitor": monitor,
            "cache": getattr(task, "cache", False), "notes": notes, "status": "running",
        }
        if derivation is not None:
            info["defaults"] = derivation.as_dict()
        elif resume_state:
            info["defaults"] = run.read_info().get("defaults")
        # a resumed run's time is every session's: the summary says "N epochs in S seconds"
        earlier_seconds = float(run.read_info(missing_ok=True).get("seconds") or 0.0) if resume_state else 0.0
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg.dump_yaml(config))
            if fixed_splits is None:
                run.write_splits(data.split_table())
            run.write_info(info)
        distributed.barrier(ctx)

        def payload(epoch: int, partial: bool = False) -> dict[str, Any]:
            return {
                "datakit_version": __version__, "epoch": epoch, "partial_epoch": partial, "task": task.name,
                "model": core.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {}, "rng": torch.get_rng_state(),
                "best_metric": best_metric, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "history": history, "config": cfg.to_dict(config), "classes": data.classes,
                "category_ids": data.category_ids, "preprocess": preprocess.as_dict(), "signs": signs.state(),
            }

        def finish(status: str, **extra: Any) -> None:
            if not ctx.is_main:
                return
            if history:
                from datakit.plots import training_curves

                training_curves(history, run.curves, title=run_dir.name, metrics=task.metrics)
            info.update(status=status, epochs_run=len(history), best_epoch=best_epoch, best_metric=best_metric,
                        seconds=round(earlier_seconds + time.perf_counter() - started, 3), warnings=signs.as_list(),
                        **extra)
            run.write_info(info)

        higher = higher_is_better(monitor)
        signs = LearningSigns(display.note)  # signs of not learning (task.diagnose)
        if resume_state and isinstance(resume_state.get("signs"), dict):
            signs.restore(resume_state["signs"])  # the earlier sessions' signs stay in run.json
        status = "completed"
        stopped_by_callback: str | None = None
        epoch = start_epoch - 1
        try:
            for epoch in range(start_epoch, config.train.epochs + 1):
                epoch_start = time.perf_counter()
                samplers["train"].set_epoch(epoch)
                if config.data.workers == 0:
                    datasets["train"].reseed(config.seed * 1_000_003 + epoch)
                schedule.start_epoch(epoch - 1)
                display.start_epoch(epoch, len(loaders["train"]))
                train_metrics = task.evaluator(data)
                try:
                    train_losses = train_one_epoch(model, task, loaders["train"], optimizer, device, autocast, scaler,
                                                   config.train.grad_clip, train_metrics, ctx, on_batch=display.batch)
                except NonFiniteLoss as exc:
                    kept = (f"best checkpoint (epoch {best_epoch}) kept at {run.best}"
                            if best_epoch else "no checkpoint was saved (it diverged in the first epoch)")
                    finish("diverged", diverged_at={"epoch": epoch, "batch": exc.batch})
                    raise TrainingDiverged(
                        f"loss became {exc.value} at epoch {epoch}, batch {exc.batch}: training stopped; "
                        f"{kept}; try a lower optim.lr (now {config.optim.lr:g}) or train.grad_clip") from None
                train_losses = train_losses.reduce(ctx)
                train_metrics.reduce(ctx)
                display.phase("validating")
                # the unwrapped model: DDP's forward is a collective, and shards may differ in batch count
                val_metrics = task.evaluator(data)
                val_losses = evaluate(core, task, loaders["val"], device, autocast, val_metrics).reduce(ctx)
                val_metrics.reduce(ctx)
                record = {"epoch": epoch, "train_loss": train_losses.loss,
                          **{f"train_{k}": v for k, v in train_metrics.compute().items()},
                          "val_loss": val_losses.loss, **{f"val_{k}": v for k, v in val_metrics.compute().items()},
                          "lr": optimizer.param_groups[0]["lr"], "seconds": 0.0}
                record = {k: record[k] for k in columns}
                value = record[monitor]
                if not math.isfinite(value):
                    finish("diverged", diverged_at={"epoch": epoch, "batch": None})
                    raise TrainingDiverged(f"validation {monitor} became {value} at epoch {epoch}: training stopped; "
                                           f"best checkpoint (epoch {best_epoch}) kept")
                if epoch > config.schedule.warmup_epochs and epoch > 1:  # not while it warms up
                    signs.update(epoch, task.diagnose(train_metrics, val_metrics, data))
                delta = config.train.min_delta
                improved = best_metric is None or (
                    value > best_metric + delta if higher else value < best_metric - delta)
                if improved:
                    best_metric, best_epoch, bad_epochs = value, epoch, 0
                else:
                    bad_epochs += 1
                schedule.end_epoch(value)
                record["seconds"] = time.perf_counter() - epoch_start
                history.append(record)
                if ctx.is_main:
                    save_checkpoint(run.last, payload(epoch))
                    if improved:  # the same payload: serialized once, copied (short epochs felt both writes)
                        copy_atomic(run.last, run.best)
                # checkpoint writing is part of what an epoch costs
                record["seconds"] = time.perf_counter() - epoch_start
                if ctx.is_main:
                    run.write_metrics(history, columns)
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
            if ctx.is_main:
                # the weights as they are now; resuming restarts the interrupted epoch from them
                save_checkpoint(run.last, payload(int(completed), partial=True))
                run.write_metrics(history, columns)
            finish("interrupted")
            raise TrainingInterrupted(
                f"training interrupted in epoch {int(completed) + 1}; checkpoint saved to {run.last}; "
                f"continue with: datakit train {manifest.location} -o {run_dir} --resume", run.last) from None
        except TrainingDiverged:
            raise
        except BaseException as exc:
            if stopped_by_callback:
                finish("stopped_by_callback", note=stopped_by_callback)
            else:
                finish("failed", error=f"{type(exc).__name__}: {exc}")
            raise

        test_metrics = None
        if "test" in loaders and best_epoch is not None:
            display.phase("testing the best checkpoint")
            if ctx.is_main:
                core.load_state_dict(read_checkpoint(run.best)["model"])
            if ctx.active:
                # only the main process surely has the file (several machines); the weights travel
                for tensor in core.state_dict().values():
                    torch.distributed.broadcast(tensor, src=0)
            evaluator = task.evaluator(data)
            test_losses = evaluate(core, task, loaders["test"], device, autocast, evaluator).reduce(ctx)
            evaluator.reduce(ctx)
            test_metrics = {"loss": test_losses.loss, **evaluator.compute()}
        if ctx.is_main and hasattr(task, "run_figures") and best_epoch is not None:
            if test_metrics is None:  # the test pass loaded the best weights; without one, load them here
                core.load_state_dict(read_checkpoint(run.best)["model"])
            task.run_figures(core, datasets, data, run_dir, device)  # e.g. overlays and per-class IoU bars
        test_accuracy = test_metrics.get("accuracy") if test_metrics else None
        finish(status, test_accuracy=test_accuracy, test_metrics=test_metrics)
    # nobody leaves the process group while the first process still writes the run directory
    distributed.barrier(ctx)
    return TrainResult(
        run_dir=run_dir, monitor=monitor, best_metric=best_metric, best_epoch=best_epoch,
        epochs_run=len(history), history=history, test_accuracy=test_accuracy, status=status,
        classes=data.classes, notes=notes, seconds=earlier_seconds + time.perf_counter() - started,
        task=task.name, task_reason=task_reason, test_metrics=test_metrics,
        derived=(info.get("defaults") or {}).get("derived", []), warnings=signs.as_list(),
    )
