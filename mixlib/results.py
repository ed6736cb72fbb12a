"""Reading the results that `mixlib.train` and `mixlib.bench` write: the book's numbers.

    runs = load_runs("results/runs/compare-cifar10")      # one dict per result.json
    table = summarize(runs)                                # one row per model, over its seeds

Every number chapter 8 shows goes through these two functions, from files committed under
``results/``; nothing is typed in by hand.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path


def load_runs(folder: str | Path) -> list[dict]:
    """Every finished run (a ``result.json``) under `folder`, sorted by model then seed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder={str(folder)!r} is not a folder of runs")
    runs = [json.loads(path.read_text()) for path in sorted(folder.rglob("result.json"))]
    return sorted(runs, key=lambda run: (run["model"], run["seed"]))


def summarize(runs: list[dict]) -> list[dict]:
    """One row per model: its seeds, test accuracies, their mean and spread, and the budget.

    Runs of one model must share their budget (data, epochs, training images); a mixed set is
    an error rather than an average of different experiments.
    """
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["model"], []).append(run)
    rows = []
    for model, group in groups.items():
        budgets = {(r["dataset"], r["epochs"], r["train_images"], r["config"].get("image_size"))
                   for r in group}
        if len(budgets) > 1:
            raise ValueError(f"runs of {model} have different budgets {sorted(budgets, key=str)}")
        accs = [r["test_acc"] for r in group]
        times = [r["train_time_s"] for r in group]
        rows.append({
            "model": model, "dataset": group[0]["dataset"], "seeds": [r["seed"] for r in group],
            "epochs": group[0]["epochs"], "train_images": group[0]["train_images"],
            "image_size": group[0]["config"].get("image_size"),  # None: the data set's own
            "params": group[0]["params"], "test_acc": accs,
            "mean_acc": statistics.fmean(accs), "min_acc": min(accs), "max_acc": max(accs),
            "std_acc": statistics.stdev(accs) if len(accs) > 1 else float("nan"),
            "mean_train_time_s": statistics.fmean(times),
            "threads": group[0]["hardware"].get("threads"), "commit": group[0]["commit"],
        })
    return sorted(rows, key=lambda row: -row["mean_acc"])


def epoch_seconds(history: list[dict]) -> list[float]:
    """The wall time of each epoch of a run, from the cumulative ``train_time_s`` of its
    per-epoch history (``result.json``'s "history", or the lines of ``metrics.jsonl``)."""
    ends = [h["train_time_s"] for h in history]
    return [end - start for start, end in zip([0.0] + ends[:-1], ends)]


def first_reaching(history: list[dict], accuracy: float) -> dict | None:
    """The first epoch whose test accuracy is at least `accuracy`, or None: when a run
    passed a goal, and after how much training (its ``train_time_s``)."""
    if not 0.0 < accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in (0, 1], got {accuracy}")
    return next((h for h in history if h["test_acc"] >= accuracy), None)


def mixer_of(model: str) -> str:
    """The mixer a small preset is built around: ``"dwconv_cifar"`` -> ``"dwconv"``."""
    for suffix in ("_cifar", "_imagenette"):
        if model.endswith(suffix):
            return model[: -len(suffix)]
    return model


def load_bench(path: str | Path) -> tuple[dict[str, dict], dict]:
    """A ``bench models --json`` file: its rows as {model: row}, and the machine it ran on
    (with the batch and the commit measured, None in files written before they were kept)."""
    data = json.loads(Path(path).read_text())
    return ({row["model"]: row for row in data["rows"]},
            {**data["environment"], "batch": data.get("batch"), "commit": data.get("commit")})
