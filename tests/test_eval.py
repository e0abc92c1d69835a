"""Evaluation metrics agree with scikit-learn; eval and predict on a trained run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from typer.testing import CliRunner

from datakit.cli import app
from datakit.evaluation import classification_metrics, evaluate
from datakit.prediction import predict


def test_metrics_on_known_predictions_match_hand_counts_and_sklearn() -> None:
    classes = ["cat", "dog", "fox"]
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])
    m = classification_metrics(y_true, y_pred, None, classes)
    assert m["accuracy"] == pytest.approx(0.6)
    # by hand: cat precision 2/3, recall 2/4; dog 2/4, 2/3; fox 2/3, 2/3
    assert m["per_class"]["cat"] == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7, "support": 4})
    assert m["per_class"]["dog"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["fox"]["recall"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    for average in ("macro", "weighted"):
        assert m[average]["precision"] == pytest.approx(precision_score(y_true, y_pred, average=average))
        assert m[average]["recall"] == pytest.approx(recall_score(y_true, y_pred, average=average))
        assert m[average]["f1"] == pytest.approx(f1_score(y_true, y_pred, average=average))
    assert m["accuracy"] == accuracy_score(y_true, y_pred)
    assert m["roc_auc"] is None


def test_binary_roc_auc_uses_the_positive_class_probability() -> None:
    y_true = np.array([0, 0, 1, 1, 1, 0])
    p1 = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2])
    probabilities = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y_true, (p1 > 0.5).astype(int), probabilities, ["no", "yes"])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y_true, p1))
    assert m["roc_auc"] == pytest.approx(8 / 9)  # 8 of the 9 positive/negative pairs ordered right
    assert "positive class 'yes'" in m["roc_auc_note"]
    single = classification_metrics(np.zeros(3, int), np.zeros(3, int), np.tile([0.8, 0.2], (3, 1)), ["no", "yes"])
    assert single["roc_auc"] is None and "only one class" in single["roc_auc_note"]


def test_a_class_never_predicted_gets_zero_precision_not_an_error() -> None:
    m = classification_metrics(np.array([0, 1, 2]), np.array([0, 0, 0]), None, ["a", "b", "c"])
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_macro_averages_leave_out_a_class_absent_from_the_split_and_say_so() -> None:
    """Class c trained on but not in this split (and never predicted): averaging its 0 recall in put
    a perfect two-class split's macro recall at 0.67."""
    import torch

    from datakit.tasks.classification import ConfusionEvaluator

    y_true = np.array([0, 0, 1, 1])
    m = classification_metrics(y_true, y_true, None, ["a", "b", "c"])
    assert m["macro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert m["macro"]["f1"] == pytest.approx(f1_score(y_true, y_true, average="macro"))  # scikit-learn's default
    assert m["per_class"]["c"]["support"] == 0 and "not in it: c" in m["macro_note"]
    evaluator = ConfusionEvaluator(3)
    evaluator.update(torch.eye(3)[[0, 0, 1, 1]], torch.tensor([0, 0, 1, 1]))
    assert evaluator.compute()["macro_f1"] == 1.0
    predicted_c = classification_metrics(y_true, np.array([0, 0, 1, 2]), None, ["a", "b", "c"])
    assert predicted_c["macro_note"] is None  # predicted, so it is averaged (its precision is 0)
    assert predicted_c["macro"]["f1"] == pytest.approx(f1_score(y_true, [0, 0, 1, 2], average="macro"))


def test_evaluate_a_run_on_its_test_split(digits_run) -> None:
    metrics = evaluate(digits_run.run_dir, show_progress=False)
    assert metrics["split"] == "test" and metrics["images"] == 90
    assert metrics["split_source"] == "the run's splits.csv"
    # the same best checkpoint on the same split: the trainer's test accuracy
    assert metrics["accuracy"] == pytest.approx(digits_run.test_accuracy)
    out = digits_run.run_dir / "eval-test"
    predictions = pd.read_csv(out / "predictions.csv", dtype={"label": str, "predicted": str})
    assert len(predictions) == 90
    assert predictions["correct"].mean() == pytest.approx(metrics["accuracy"])
    assert (predictions["label"] == predictions["predicted"]).tolist() == predictions["correct"].tolist()
    matrix = pd.read_csv(out / "confusion_matrix.csv", index_col=0)
    assert matrix.to_numpy().sum() == 90 and np.trace(matrix.to_numpy()) == round(90 * metrics["accuracy"])
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    for png in ("confusion_matrix.png", "misclassified.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert metrics["roc_auc"] is not None and 0.9 < metrics["roc_auc"] <= 1.0  # one-vs-rest on 10 classes


def test_evaluate_all_images_and_another_output_folder(digits_run, tmp_path: Path) -> None:
    metrics = evaluate(digits_run.run_dir, split="all", output=tmp_path / "report", show_progress=False,
                       checkpoint="last")
    assert metrics["images"] == 600 and metrics["epoch"] == 6
    assert (tmp_path / "report" / "metrics.json").is_file()


def test_predict_returns_class_and_probability_per_image(digits_run, digits_small: Path, tmp_path: Path) -> None:
    from datakit.manifest import load_manifest

    root = load_manifest(digits_small).root()
    (tmp_path / "broken.png").write_bytes(b"nope")
    table = predict(digits_run.run_dir, [root / "3", tmp_path / "broken.png"], all_probabilities=True)
    assert list(table.columns[:4]) == ["path", "label", "probability", "error"]
    good = table[table["error"].isna()]
    assert len(good) == len(list((root / "3").glob("*.png")))
    assert set(good["label"]) <= {str(d) for d in range(10)}
    assert (good["label"] == "3").mean() > 0.7  # mostly right about a class it learned
    probs = good[[f"p_{d}" for d in range(10)]].to_numpy()
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.allclose(probs.max(1), good["probability"])
    bad = table[table["error"].notna()]
    assert len(bad) == 1 and pd.isna(bad["label"].iloc[0]) and "cannot decode" in bad["error"].iloc[0]


def test_cli_eval_and_predict(digits_run, digits_small: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(digits_run.run_dir), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"] == 90
    from datakit.manifest import load_manifest

    image = load_manifest(digits_small).root() / "7"
    result = runner.invoke(app, ["predict", str(digits_run.run_dir), str(image), "--csv", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(list(image.glob("*.png")))
