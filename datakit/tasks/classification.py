"""Classification: one label per image; cross-entropy; accuracy and macro F1.

The data side (decode, resize, cache, normalization statistics, augmentation) lives in
``datakit.data``; this module ties it to the engine's protocol (``datakit.tasks.base``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from datakit import distributed
from datakit.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    STATS_SAMPLE,
    ImageClassificationDataset,
    LabelledSplits,
    Preprocess,
    auto_channels,
    balanced_class_weights,
    balanced_sample_weights,
    channel_stats,
    decode_all,
    fits_in_cache,
    image_size,
    prepare_classification,
    screen_files,
    skipped_note,
)
from datakit.errors import DatakitError
from datakit.models import build_model, get_family
from datakit.tasks.base import Task


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray | None,
                           classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy; precision, recall, F1 per class, macro and weighted; confusion matrix; ROC-AUC."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

    labels = list(range(len(classes)))
    per_class = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    result: dict[str, Any] = {
        "images": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {
            name: {"precision": float(per_class[0][i]), "recall": float(per_class[1][i]),
                   "f1": float(per_class[2][i]), "support": int(per_class[3][i])}
            for i, name in enumerate(classes)
        },
    }
    # a class neither in the split nor predicted has no precision or recall to average: counting it
    # as 0 put a 2-class split's macro recall at 0.33 (scikit-learn's own default leaves it out too)
    occurring = sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist())) or labels
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=occurring, average=average,
                                                     zero_division=0)
        result[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    absent = [classes[i] for i in labels if i not in occurring]
    result["macro_note"] = (f"averaged over the {len(occurring)} classes in this split or predicted; not in it: "
                            f"{', '.join(absent)}" if absent else None)
    result["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    result["roc_auc"] = None
    result["roc_auc_note"] = None
    present = np.unique(y_true)
    if probabilities is not None:
        if len(classes) == 2:
            if len(present) == 2:
                result["roc_auc"] = float(roc_auc_score(y_true, probabilities[:, 1]))
                result["roc_auc_note"] = f"binary, positive class '{classes[1]}'"
            else:
                result["roc_auc_note"] = "undefined: the split holds only one class"
        elif len(present) == len(classes):
            result["roc_auc"] = float(roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro",
                                                    labels=labels))
            result["roc_auc_note"] = "one-vs-rest, macro average"
        else:
            result["roc_auc_note"] = "undefined: not every class occurs in the split"
    return result


class ConfusionEvaluator:
    """A confusion matrix over a pass; accuracy and macro F1 (scikit-learn's, zero_division=0)."""

    def __init__(self, num_classes: int) -> None:
        self.k = num_classes
        self.matrix = torch.zeros(num_classes * num_classes, dtype=torch.int64)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        predicted = outputs.argmax(1)
        cells = (targets.to(torch.int64) * self.k + predicted.to(torch.int64)).cpu()
        self.matrix += torch.bincount(cells, minlength=self.k * self.k)

    def reduce(self, ctx: distributed.Context) -> None:
        if ctx.active:
            summed = distributed.all_sum(ctx, [float(v) for v in self.matrix.tolist()])
            self.matrix = torch.tensor([round(v) for v in summed], dtype=torch.int64)

    def compute(self) -> dict[str, float]:
        matrix = self.matrix.view(self.k, self.k).double()
        total = float(matrix.sum())
        correct = matrix.diagonal()
        predicted, actual = matrix.sum(0), matrix.sum(1)
        denominator = predicted + actual
        f1 = torch.where(denominator > 0, 2 * correct / denominator.clamp(min=1), torch.zeros_like(correct))
        occurring = denominator > 0  # a class neither in the pass nor predicted has no F1 (as in classification_metrics)
        macro = float(f1[occurring].mean()) if bool(occurring.any()) else 0.0
        return {"accuracy": float(correct.sum()) / max(total, 1.0), "macro_f1": macro}


NEAR_CHANCE = 0.1  # train accuracy within 10% of the way from chance to 1.0 counts as "near chance"
MEMORIZED = 0.9  # training accuracy this high while validation stays near chance: memorizing


def _accuracy_and_chance(matrix: torch.Tensor) -> tuple[float, float, float]:
    """(accuracy, chance = the largest class's share, images) of a confusion matrix (rows: actual)."""
    matrix = matrix.double()
    total = float(matrix.sum())
    if not total:
        return 0.0, 0.0, 0.0
    return float(matrix.diagonal().sum()) / total, float(matrix.sum(1).max()) / total, total


def not_learning(train: ConfusionEvaluator, val: ConfusionEvaluator, classes: list[str], config: Any) -> dict[str, str]:
    """Validation predicting one class, training accuracy near chance (the majority class's share), or
    training accuracy high while validation stays near chance (memorizing a set too small)."""
    found: dict[str, str] = {}
    lr, batch = config.optim.lr, config.train.batch_size
    val_matrix = val.matrix.view(val.k, val.k)
    predicted, actual = val_matrix.sum(0), val_matrix.sum(1)
    if int((actual > 0).sum()) >= 2 and int((predicted > 0).sum()) == 1:
        only = classes[int(predicted.argmax())]
        found["single_class"] = (
            f"validation predicts one class only ('{only}') for all {int(actual.sum())} images: the model has "
            f"not learnt to tell the classes apart. Likely causes: a learning rate too high or too low (optim.lr, "
            f"now {lr:g}), too few optimizer steps (train.epochs, train.batch_size now {batch}), imbalanced "
            "classes (data.balance=weights or sampler), early stopping before it learnt (train.patience), "
            "or images too small to show the difference (data.image_size)")
    accuracy, chance, total = _accuracy_and_chance(train.matrix.view(train.k, train.k))
    if total:
        if accuracy < chance + NEAR_CHANCE * (1 - chance):
            found["near_chance"] = (
                f"training accuracy {accuracy:.3f} is near chance ({chance:.3f}, always the largest class): the "
                f"model does not fit even the training images. Likely causes: optim.lr (now {lr:g}) too high or "
                f"too low, augmentation too strong (augment), labels that do not match the images (check the "
                f"manifest), or a model too small for the data (model.conv.filters)")
    val_accuracy, val_chance, val_total = _accuracy_and_chance(val_matrix)
    if total and val_total and accuracy >= MEMORIZED and val_accuracy < val_chance + NEAR_CHANCE * (1 - val_chance):
        per_class = int(total // max(1, int((train.matrix.view(train.k, train.k).sum(1) > 0).sum())))
        found["memorizing"] = (
            f"training accuracy {accuracy:.3f} but validation {val_accuracy:.3f}, near chance ({val_chance:.3f}): "
            f"the model memorizes the training images instead of learning what tells the classes apart. Likely "
            f"causes: too few training images (~{per_class} per class) for a model trained from scratch, "
            f"augmentation too weak for them (augment: medium, or medium:any where flips and turns keep the "
            f"class), a model too large (model.conv.filters), too little weight decay (optim.weight_decay, now "
            f"{config.optim.weight_decay:g}), or validation images unlike the training ones (check the splits)")
    return found


class ClassificationTask(Task):
    name = "classification"
    metrics = ("accuracy", "macro_f1")

    # ---- data

    def prepare(self, manifest: Any, fixed_splits: Any = None, classes: list[str] | None = None) -> LabelledSplits:
        return prepare_classification(manifest, self.config.data, self.config.seed, fixed_splits, classes=classes)

    def preprocess(self, data: LabelledSplits) -> Preprocess:
        config = self.config
        height, width = image_size(config.data)
        family = get_family(config.model.name, self.name)
        channels = config.data.channels
        if channels == "auto":
            channels = family.channels or auto_channels(data.frames["train"])
        elif family.channels and channels != family.channels:
            raise DatakitError(f"model '{config.model.name}' needs {family.channels}-channel input; "
                               f"data.channels is {channels} (use auto)")
        return Preprocess(height=height, width=width, channels=int(channels), resize=config.data.resize)

    def _normalization(self, preprocess: Preprocess, train_images: Any, train_paths: list[Path]) -> None:
        """Fill preprocess.mean/std: from the train split (all of it when cached, else a sample)."""
        config = self.config
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

    def datasets(self, data: LabelledSplits, preprocess: Preprocess, display: Any, fill_normalization: bool,
                 notes: list[str]) -> dict[str, ImageClassificationDataset]:
        """Decoded (and cached when it fits) images per split; augmentation on train only.

        One bad file never stops a run: what cannot be decoded is left out of ``data.frames``,
        counted, and reported in ``notes``."""
        from datakit.online_augment import build_transform

        config = self.config
        paths = {name: [data.root / p for p in frame["path"]] for name, frame in data.frames.items()}
        counts = {name: len(frame) for name, frame in data.frames.items()}
        self.cache = fits_in_cache(sum(counts.values()), preprocess, config.data.cache)
        images: dict[str, Any] = {name: None for name in paths}
        failed: dict[str, dict[int, str]] = {name: {} for name in paths}
        if self.cache:
            display.start_task("loading images", sum(counts.values()))
            for name in paths:
                if counts[name]:
                    images[name] = decode_all(paths[name], preprocess, config.data.workers, on_batch=display.advance,
                                              failures=failed[name])
        else:  # decoded batch by batch later: leave out what cannot be decoded now, from the headers
            failed = {name: screen_files(paths[name]) for name in paths}
        for name, failures in failed.items():
            if not failures:
                continue
            keep = [i for i in range(len(paths[name])) if i not in failures]
            data.frames[name] = data.frames[name].iloc[keep].reset_index(drop=True)
            paths[name] = [paths[name][i] for i in keep]
            images[name] = images[name][keep] if images[name] is not None else None
            counts[name] = len(keep)
            notes.append(skipped_note(failures, name))
            display.note(f"[yellow]skipped:[/] {notes[-1]}")
        for name in ("train", "val"):
            if not counts[name]:
                raise DatakitError(f"{data.where}: no image of split '{name}' could be decoded; see the notes above")
        if fill_normalization:
            self._normalization(preprocess, images["train"], paths["train"])
        transform = build_transform(config.augment, seed=config.seed, task=self.name)
        return {
            name: ImageClassificationDataset(paths[name], data.frames[name]["target"].to_numpy(), preprocess,
                                             transform if name == "train" else None, images[name])
            for name in paths if counts[name]
        }

    def sample_weights(self, data: LabelledSplits) -> torch.Tensor | None:
        if self.config.data.balance != "sampler":
            return None
        return balanced_sample_weights(data.frames["train"]["target"].to_numpy(), len(data.classes))

    # ---- model, loss, metrics

    def build_model(self, preprocess: Preprocess, data: LabelledSplits) -> nn.Module:
        return build_model(self.config.model, preprocess.channels, len(data.classes),
                           (preprocess.height, preprocess.width), task=self.name)

    def setup_loss(self, data: LabelledSplits, device: torch.device) -> None:
        weights = None
        if self.config.data.balance == "weights":
            weights = balanced_class_weights(data.frames["train"]["target"].to_numpy(), len(data.classes)).to(device)
        self.train_loss = nn.CrossEntropyLoss(weight=weights, label_smoothing=self.config.train.label_smoothing)
        self.eval_loss = nn.CrossEntropyLoss(weight=weights)

    def step(self, model: nn.Module, batch: Any, device: torch.device,
             train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        x, y = batch
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss = (self.train_loss if train else self.eval_loss)(logits.float(), y)
        return loss, {"loss": loss}, logits, y

    def evaluator(self, data: Any) -> ConfusionEvaluator:
        return ConfusionEvaluator(len(data.classes))

    def diagnose(self, train: ConfusionEvaluator, val: ConfusionEvaluator, data: LabelledSplits) -> dict[str, str]:
        return not_learning(train, val, data.classes, self.config)

    # ---- a trained run

    @staticmethod
    def outputs_to_numpy(outputs: torch.Tensor) -> np.ndarray:
        """Class probabilities (N x classes) from a batch of logits."""
        return torch.softmax(outputs.float(), dim=1).cpu().numpy()

    @staticmethod
    def eval_artefacts(rows: Any, images: np.ndarray, probabilities: np.ndarray, classes: list[str], out_dir: Path,
                       split: str, max_examples: int = 36) -> tuple[dict[str, Any], dict[str, str]]:
        """Metrics (accuracy, macro_f1, per class, confusion matrix, ROC-AUC) and the files ``eval`` writes:
        confusion matrix (CSV and PNG), predictions.csv, the most confident mistakes (PNG)."""
        import pandas as pd

        from datakit import plots

        target_of = {name: i for i, name in enumerate(classes)}
        y_true = rows["label"].astype(str).map(target_of).to_numpy(dtype=np.int64)
        y_pred = probabilities.argmax(1)
        metrics = classification_metrics(y_true, y_pred, probabilities, classes)
        metrics["macro_f1"] = metrics["macro"]["f1"]
        metrics["misclassified"] = int((y_true != y_pred).sum())
        matrix = np.array(metrics["confusion_matrix"])
        pd.DataFrame(matrix, index=pd.Index(classes, name="true"), columns=classes).to_csv(
            out_dir / "confusion_matrix.csv")
        plots.confusion_matrix(matrix, classes, out_dir / "confusion_matrix.png",
                               title=f"{split}: accuracy {metrics['accuracy']:.4f} ({len(y_true)} images)")
        confidence = probabilities[np.arange(len(y_pred)), y_pred]
        predictions = pd.DataFrame({
            "id": rows["id"].astype(str).to_numpy(), "path": rows["path"].astype(str).to_numpy(),
            "label": rows["label"].astype(str).to_numpy(), "predicted": [classes[i] for i in y_pred],
            "probability": confidence, "correct": y_true == y_pred,
        })
        predictions.to_csv(out_dir / "predictions.csv", index=False)
        wrong = np.flatnonzero(y_true != y_pred)
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:max_examples]
        plots.image_grid(
            [images[i] for i in wrong],
            [f"{rows['path'].iloc[i].rsplit('/', 1)[-1]}\n{classes[y_true[i]]} -> {classes[y_pred[i]]}"
             f" ({confidence[i]:.2f})" for i in wrong],
            out_dir / "misclassified.png",
            title=f"{split}: {metrics['misclassified']} misclassified, most confident first",
        )
        files = {name: str(out_dir / name) for name in (
            "confusion_matrix.csv", "confusion_matrix.png", "misclassified.png", "predictions.csv")}
        return metrics, files

    @staticmethod
    def to_rows(paths: list[str], probabilities: np.ndarray, errors: list[str | None], classes: list[str],
                all_probabilities: bool = False) -> Any:
        """``predict``'s table: path, label (the most probable class), probability, error; p_<class> on request."""
        import pandas as pd

        best = np.nan_to_num(probabilities, nan=-1.0).argmax(1)
        table = pd.DataFrame({
            "path": paths,
            "label": pd.array([classes[b] if e is None else None for b, e in zip(best, errors)], dtype="string"),
            "probability": [float(probabilities[i, b]) if e is None else float("nan")
                            for i, (b, e) in enumerate(zip(best, errors))],
            "error": pd.array(errors, dtype="string"),
        })
        if all_probabilities:
            for c, name in enumerate(classes):
                table[f"p_{name}"] = probabilities[:, c]
        return table


TASK = ClassificationTask
