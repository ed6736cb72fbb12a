"""Reading the results that `mixlib.train` and `mixlib.bench` write: the book's numbers.

    runs = load_runs("results/sweep")                      # one dict per result.json
    table = summarize([r for r in runs if r["epochs"] == 15])  # one row per model, one budget
    run = load_run("results/runs/denseconv_cifar-cifar10-s0-e24-bf16")  # one run
    print(describe_budget(run, goal=0.9, seconds=3600))    # how far it got, and when

Every number chapter 8 shows goes through these functions, from files committed under
``results/``; nothing is typed in by hand.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from .paths import REPOSITORY, results_folder  # the chapters import them from here
from .provenance import machine_name


def load_runs(folder: str | Path) -> list[dict]:
    """Every finished run (a ``result.json``) under `folder`, sorted by model then seed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder={str(folder)!r} is not a folder of runs")
    runs = [load_run(path.parent) for path in sorted(folder.rglob("result.json"))]
    return sorted(runs, key=lambda run: (run["model"], run["seed"]))


def load_run(folder: str | Path) -> dict:
    """The one run in `folder` (its ``result.json``), with the re-evaluation of its last
    checkpoint under ``"checkpoint_eval"`` when ``scripts/evaluate_checkpoint.py`` wrote one
    (None otherwise)."""
    folder = Path(folder)
    path = folder / "result.json"
    if not path.is_file():
        raise FileNotFoundError(f"folder={str(folder)!r} holds no result.json (unfinished run?)")
    run = json.loads(path.read_text())
    evaluation = folder / "checkpoint_eval.json"
    run["checkpoint_eval"] = json.loads(evaluation.read_text()) if evaluation.is_file() else None
    return run


def summarize(runs: list[dict], *, seeds=None) -> list[dict]:
    """One row per model: its seeds, test accuracies, their mean and spread, and the budget;
    over the runs of `seeds` only when it is given (`protocol.SEEDS`, as the verdicts read).

    Runs of one model must be one experiment (`one_experiment`: one budget and recipe, one run
    per seed); a mixed set is an error rather than an average of different experiments.
    """
    if seeds is not None and (isinstance(seeds, (int, str)) or not seeds):
        raise ValueError(f"seeds must be a non-empty collection of seed numbers "
                         f"(protocol.SEEDS), got {seeds!r}")
    groups: dict[str, list[dict]] = {}
    for run in runs:
        if seeds is not None and run["seed"] not in seeds:
            continue
        groups.setdefault(run["model"], []).append(run)
    rows = []
    for model, group in groups.items():
        one_experiment(group, model)
        accs = [r["test_acc"] for r in group]
        interval = t_interval(accs)
        times = [r["train_time_s"] for r in group]
        rows.append({
            "model": model, "dataset": group[0]["dataset"], "seeds": [r["seed"] for r in group],
            "epochs": group[0]["epochs"], "train_images": group[0]["train_images"],
            "image_size": group[0]["config"].get("image_size"),  # None: the data set's own
            "params": group[0]["params"], "test_acc": accs,
            "mean_acc": statistics.fmean(accs), "min_acc": min(accs), "max_acc": max(accs),
            "std_acc": statistics.stdev(accs) if len(accs) > 1 else float("nan"),
            # the 95% t-interval of the mean, as fractions like the accuracies (NaN for one seed)
            "ci_low": interval["low"], "ci_high": interval["high"],
            "mean_train_time_s": statistics.fmean(times),
            "threads": group[0]["hardware"].get("threads"), "commit": group[0]["commit"],
        })
    return sorted(rows, key=lambda row: -row["mean_acc"])


# the fields of a run's config that name it or say where it ran, not what experiment it is
_NOT_RECIPE = frozenset({"model", "seed", "run", "out", "device", "checkpoint_every", "log_every"})


def _recipe(run: dict) -> dict:
    """What makes a run's experiment, besides its model and seed: its data, budget and every
    training setting (its config, with the arithmetic and data size it recorded)."""
    recipe = {k: v for k, v in (run.get("config") or {}).items() if k not in _NOT_RECIPE}
    recipe.update({k: run.get(k) for k in ("dataset", "epochs", "train_images", "amp", "quick")})
    return recipe


def one_experiment(runs: list[dict], what: str) -> None:
    """A ValueError naming `what` unless `runs` are one experiment over seeds: the same budget
    and recipe (a bf16 or quick run, or one with other augmentation, is another experiment),
    and one run per seed (a second run of a seed would count twice, or silently replace it),
    each with a finite accuracy."""
    recipes = [_recipe(r) for r in runs]
    differ = sorted(k for k in set().union(*recipes)
                    if len({json.dumps(r.get(k), sort_keys=True) for r in recipes}) > 1)
    if differ:
        raise ValueError(f"runs of {what} have different budgets or recipes (they differ in "
                         f"{', '.join(differ)}): not one experiment to average")
    for r in runs:  # every statistic over them would fail, or be NaN
        accuracy = r.get("test_acc")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) \
                or not math.isfinite(accuracy):
            raise ValueError(f"the run of {what} with seed {r['seed']} records "
                             f"test_acc={accuracy!r}, not a finite accuracy")
    seeds = [r["seed"] for r in runs]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"runs of {what} repeat seed(s) {repeated}: keep one run per seed")


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


def precision(run: dict) -> str:
    """The arithmetic a run trained in: ``"float32"``, or the autocast type ``--amp`` chose."""
    return "float32" if run["amp"] == "off" else run["amp"]


def budget(run: dict, *, goal: float, seconds: float) -> dict:
    """How far a run got against an accuracy `goal` and a training-time budget of `seconds`,
    from its per-epoch history and the training time it recorded (evaluations not counted):

    - ``reached``: the first epoch at `goal` or above (its history entry), or None;
    - ``inside``: the last epoch that ended within `seconds`, or None if none did;
    - ``best``: the epoch with the best test accuracy (the first, on a tie);
    - ``median_epoch_s``: the median epoch, robust to the stops of a shared machine.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be a positive training time, got {seconds}")
    history = run["history"]
    if not history:  # max() and median() of nothing would fail without naming the run
        raise ValueError(f"the run of {run.get('model')} with seed {run.get('seed')} has no "
                         f"finished epoch in its history: no budget to read")
    inside = [h for h in history if h["train_time_s"] <= seconds]
    return {"reached": first_reaching(history, goal),
            "inside": inside[-1] if inside else None,
            "best": max(history, key=lambda h: h["test_acc"]),
            "median_epoch_s": statistics.median(epoch_seconds(history))}


def describe_budget(run: dict, *, goal: float = 0.9, seconds: float = 3600.0) -> str:
    """`budget` as the sentence chapter 8 prints for each run: the end, the best, the time,
    the last epoch inside the budget, when the goal was first reached, and the re-evaluated
    last checkpoint when `load_run` found one."""
    b = budget(run, goal=goal, seconds=seconds)
    inside, reached = b["inside"], b["reached"]
    text = (f"{run['test_acc']:.2%} at the end (best {b['best']['test_acc']:.2%}, epoch "
            f"{b['best']['epoch']}), {run['train_time_s'] / 60:.0f} min recorded, "
            f"{b['median_epoch_s']:.0f} s per epoch (median); "
            + (f"{inside['test_acc']:.2%} after epoch {inside['epoch']}, the last inside "
               f"{seconds / 60:.0f} min; " if inside else f"no epoch inside {seconds / 60:.0f} min; ")
            + (f"{goal:.0%} first after epoch {reached['epoch']}, at "
               f"{reached['train_time_s'] / 60:.1f} min" if reached else f"{goal:.0%} not reached"))
    evaluation = run.get("checkpoint_eval")
    if evaluation:  # the last checkpoint again: the moving average against the weights
        text += (f"; last checkpoint {evaluation['test_acc_ema']:.2%} with the moving average, "
                 f"{evaluation['test_acc_weights']:.2%} with the weights themselves")
    return text


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


# ----------------------------------------------------------------------------------------------
# the comparison's statistics: intervals over seeds, paired differences, verdicts

# two-sided 95% quantiles of Student's t, t_{0.975, df}, for df = 1..30 (beyond, 1.96: 4% low at
# df = 31, 2% at 60; the comparison has at most 2 degrees of freedom)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


_ROUNDING = 1e-9  # points: far below one test image's share (0.01 to 0.03), far above float error


def _points(value: float, margin: float) -> str:
    """`value` (points) with its sign to two decimals, or to as many more as keep it off a line a
    verdict is drawn at (0, ±`margin`) that it does not lie on: -0.0036 prints as -0.004, not
    as -0.00, which would read as an interval reaching zero."""
    for digits in range(2, 11):
        text = f"{value:+.{digits}f}"
        if not any(float(text) == line and abs(value - line) > _ROUNDING
                   for line in (0.0, -margin, margin)):
            break
    return text


def t_interval(values: list[float]) -> dict:
    """Mean of `values` and its 95% t-interval (n − 1 degrees of freedom, the quantile to three
    decimals; beyond 30 the normal 1.96): ``mean``, ``low``, ``high``, ``n``. One value has no
    interval (low and high are NaN)."""
    n = len(values)
    if n == 0:
        raise ValueError("values must hold at least one number, got none")
    if not all(math.isfinite(v) for v in values):  # statistics.stdev fails obscurely on them
        raise ValueError(f"values must be finite numbers, got {list(values)!r}")
    mean = statistics.fmean(values)
    if n == 1:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": 1}
    quantile = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = quantile * statistics.stdev(values) / n ** 0.5
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict:
    """a − b in accuracy points over the seeds both have (paired: seed s against seed s), with
    `t_interval`'s mean and interval, the seeds used and each one's difference (``per_seed``,
    in the seeds' order)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0, "seeds": [],
                "per_seed": []}
    per_seed = [100 * (a[s] - b[s]) for s in seeds]
    return {**t_interval(per_seed), "seeds": seeds, "per_seed": per_seed}


def verdict(differences: list[dict], kind: str, *, margin: float, seeds: int) -> str:
    """The protocol's verdict (`mixlib.protocol.Claim`) from paired differences a − b, one per
    rival (kind "best" has several): "reproduces", "contradicts", "undecided at this scale",
    or "pending" while any difference has fewer than `seeds` paired seeds (the protocol's
    three: a verdict waits for all of them, not for the first two)."""
    if kind not in ("better", "equal", "best"):
        raise ValueError(f"kind must be 'better', 'equal' or 'best', got {kind!r}")
    if seeds < 2:  # a t-interval needs two
        raise ValueError(f"seeds must be at least 2, got {seeds!r}")
    if not differences:  # all() of nothing would read "reproduces"
        raise ValueError(f"differences must hold one per rival, got none (kind={kind!r})")
    if any(d["n"] < seeds for d in differences):
        return "pending"
    if not all(math.isfinite(d["low"]) and math.isfinite(d["high"]) for d in differences):
        raise ValueError(f"differences over {seeds} seeds must have finite intervals, got "
                         f"{differences!r}")
    if kind == "equal":
        (d,) = differences
        # accuracies are counts over the test set, so a difference exactly at the margin can
        # come out a rounding above it: 100 * (0.81 - 0.80) is 1.0000000000000009
        within = margin + _ROUNDING
        if -within <= d["low"] and d["high"] <= within:
            return "reproduces"
        if d["low"] > within or d["high"] < -within:
            return "contradicts"
        return "undecided at this scale"
    if all(d["low"] > 0 for d in differences):
        return "reproduces"
    if any(d["high"] < 0 for d in differences):
        return "contradicts"
    return "undecided at this scale"


def accuracies(runs: list[dict], model: str, *, epochs: int, dataset: str) -> dict[int, float]:
    """{seed: final test accuracy} of `model`'s runs at one budget."""
    return {r["seed"]: r["test_acc"] for r in _at_budget(runs, model, epochs, dataset)}


def trained_on(run: dict) -> tuple[str, ...]:
    """The processors (GPU or CPU models) `run` trained on, in order, each once: a run resumed
    on another machine names both. A start recorded before runs kept ``machines`` is not
    known, so such a run names fewer: at least the last, its ``hardware``'s."""
    names = [m for m in run.get("machines") or [] if m]  # None: a start before they were kept
    names.append(machine_name(run.get("hardware", {})))  # the last: in every record
    return tuple(dict.fromkeys(names))


def _at_budget(runs: list[dict], model: str, epochs: int, dataset: str) -> list[dict]:
    chosen = [r for r in runs if (r["model"], r["epochs"], r["dataset"]) == (model, epochs, dataset)]
    one_experiment(chosen, f"{model} at {epochs} epochs on {dataset}")
    return chosen


def _after_epoch(run: dict, epoch: int) -> float:
    """`run`'s test accuracy after `epoch`; for a run that diverged before it, the accuracy the
    protocol scores it at (its ``test_acc``, chance)."""
    history = run["history"]
    if epoch <= len(history):
        return history[epoch - 1]["test_acc"]
    if "diverged" in run:
        return run["test_acc"]
    raise ValueError(f"the run of {run['model']} with seed {run['seed']} records {len(history)} "
                     f"epochs of history, not the {epoch} read, and did not diverge")


def equal_time(runs: list[dict], img_s: dict[str, float], *, epochs: int, dataset: str,
               train_images: int) -> tuple[float, list[dict]]:
    """The protocol's equal-time view: every model of `img_s` (its training images per second,
    measured in one benchmark) gets the time the fastest takes for `epochs` epochs of
    `train_images`, and is read after the last whole epoch it completes in that time, in its
    `epochs`-epoch runs (the schedule's learning rate not yet decayed there).

    Returns (the time in seconds, one row per model in `img_s`'s order): ``model``, ``img_s``,
    ``epochs`` (whole epochs in the time, at most `epochs`; 0 if not one fits), ``mean_acc``
    (the mean test accuracy after that epoch over the protocol's seeds finished, a run that
    diverged before that epoch at its score, chance; None without a finished seed or an epoch)
    and ``n`` (those seeds)."""
    from . import protocol  # the protocol is data about runs; results only reads it

    epoch_s = {model: train_images / speed for model, speed in img_s.items()}
    budget_s = epochs * min(epoch_s.values())
    rows = []
    for model, speed in img_s.items():
        # whole epochs in the time (the fastest model's exactly `epochs`, despite rounding)
        fit = min(epochs, int(budget_s / epoch_s[model] + 1e-9))
        # the protocol's seeds only, as in the verdicts
        done = [_after_epoch(r, fit) for r in _at_budget(runs, model, epochs, dataset)
                if r["seed"] in protocol.SEEDS] if fit else []
        rows.append({"model": model, "img_s": speed, "epochs": fit, "n": len(done),
                     "mean_acc": statistics.fmean(done) if done else None})
    return budget_s, rows


def pilot(runs: list[dict]) -> dict:
    """The pilot's final test accuracies, {(preset, epochs): accuracy} for those of its four
    seed-0 runs among `runs`, and under "epochs" the E they decide (`protocol.pilot_epochs`:
    None while one is missing)."""
    from . import protocol

    accuracy = {}
    for run in protocol.PILOT_RUNS:
        found = accuracies(runs, run.model, epochs=run.epochs, dataset=run.data).get(run.seed)
        if found is not None:
            accuracy[(run.preset, run.epochs)] = found
    return {"accuracy": accuracy, "epochs": protocol.pilot_epochs(accuracy)}


def verdicts(runs: list[dict], claims=None) -> list[dict]:
    """One row per claim of the protocol (`mixlib.protocol.CLAIMS` unless `claims` is given):
    its paired differences a − b (one per rival), and the verdict the protocol's rule gives
    with the ``"margin"`` and number of ``"seeds"`` the row also records (the protocol's).
    A difference is marked ``"two_machines"`` when one of its pairs was trained on two
    processors, its two runs on different ones or one run resumed on another (`trained_on`; the
    column has run on more than one machine: results/protocol.md), and lists under
    ``"diverged"`` the seeds of its pairs with a run that diverged (scored at chance).
    CIFAR-10 claims compare runs at the E the pilot among `runs` decided (`pilot`), at the
    protocol's E while the pilot is unfinished."""
    from . import protocol  # the protocol is data about runs; results only reads it

    cifar_epochs = pilot(runs)["epochs"] or protocol.EPOCHS
    margin, seeds = protocol.MARGIN, len(protocol.SEEDS)  # each row records what it was drawn with
    rows = []
    for claim in claims if claims is not None else protocol.CLAIMS:
        epochs = cifar_epochs if claim.data == "cifar10" else protocol.IMAGENETTE_EPOCHS

        def side(preset):
            """{seed: accuracy}, {seed: processors} and the diverged seeds of `preset`'s runs
            at this claim's budget; the protocol's seeds only (an extra seed is no part of
            its verdict)."""
            chosen = [r for r in _at_budget(runs, protocol.model_name(preset, claim.data), epochs,
                                            claim.data) if r["seed"] in protocol.SEEDS]
            return ({r["seed"]: r["test_acc"] for r in chosen},
                    {r["seed"]: trained_on(r) for r in chosen},
                    {r["seed"] for r in chosen if "diverged" in r})

        a_acc, a_machine, a_diverged = side(claim.a)  # once, not once per rival

        def difference(rival):
            b_acc, b_machine, b_diverged = side(rival)
            paired = paired_difference(a_acc, b_acc)
            return {"b": rival, **paired,
                    "two_machines": any(len({*a_machine[s], *b_machine[s]}) > 1
                                        for s in paired["seeds"]),
                    "diverged": [s for s in paired["seeds"] if s in a_diverged | b_diverged]}

        differences = [difference(rival) for rival in claim.rivals]
        rows.append({"claim": claim.key, "statement": claim.statement, "paper": claim.paper,
                     "a": claim.a, "kind": claim.kind, "epochs": epochs, "differences": differences,
                     "margin": margin, "seeds": seeds,
                     "verdict": verdict(differences, claim.kind, margin=margin, seeds=seeds)})
    return rows


def format_verdicts(rows: list[dict]) -> str:
    """`verdicts`' rows as a Markdown table, one line per claim and rival b: the claim (its key,
    the pair a − b, its statement), the mean paired difference in test-accuracy points, its 95%
    interval, the number of paired seeds (with * when a pair was trained on two machines, †
    when a run of a pair diverged and is scored at chance), and the claim's verdict. An
    interval's end that two decimals would round onto 0 or ± the row's margin gets more
    (`_points`). It reads as plain text too; a notebook shows it as a table with
    ``IPython.display.Markdown``. Four narrow number columns leave the claim's column the
    page's width, where its words wrap."""
    lines = ["| claim (a − b) | mean (points) | 95% interval | seeds | verdict |",
             "|:--|--:|--:|--:|:--|"]
    for row in rows:
        for i, d in enumerate(row["differences"]):
            pair = f"({row['a']} − {d['b']})"
            # the claim's key, statement and verdict once, on its first rival's line
            claim, said = ((f"`{row['claim']}` {pair}: {row['statement']}", row["verdict"])
                           if i == 0 else (pair, ""))
            mean = f"{d['mean']:+.2f}" if d["n"] else "–"
            interval = (f"[{_points(d['low'], row['margin'])}, "
                        f"{_points(d['high'], row['margin'])}]" if d["n"] > 1 else "–")
            seeds = (f"{d['n']}{'*' if d.get('two_machines') else ''}"
                     f"{'†' if d.get('diverged') else ''}")
            lines.append(f"| {claim} | {mean} | {interval} | {seeds} | {said} |")
    return "\n".join(lines)


def verdicts_in_words(rows: list[dict]) -> str:
    """`verdicts`' rows read out as Markdown, one bullet per decided claim: its verdict, each
    seed's difference (a wide interval is often one seed), and what the interval says beyond
    the verdict (the direction of an undecided difference), then one bullet naming the pending
    claims. A pending "best" claim whose verdict a finished rival has already fixed (its
    interval wholly below zero: the rule's "contradicts", whatever the missing seeds give) is
    named as such. Each row is read with the margin and number of seeds its verdict was drawn
    with (its ``"margin"`` and ``"seeds"``)."""
    def span(a, d, margin):
        by_seed = ", ".join(f"{value:+.2f}" for value in d["per_seed"])
        if d.get("diverged"):
            by_seed += (f"; seed{'s' if len(d['diverged']) > 1 else ''} "
                        f"{', '.join(map(str, d['diverged']))} diverged, scored at chance")
        return (f"{a} − {d['b']} = {d['mean']:+.2f} points [{_points(d['low'], margin)}, "
                f"{_points(d['high'], margin)}] (by seed: {by_seed})")

    said, pending = [], []
    for row in rows:
        margin, seeds = row["margin"], row["seeds"]
        within = f"±{margin:g} point{'' if margin == 1 else 's'}"
        key, a, kind, ds = f"`{row['claim']}`", row["a"], row["kind"], row["differences"]
        if row["verdict"] == "pending":
            fixed = [d for d in ds if kind == "best" and d["n"] >= seeds and d["high"] < 0]
            pending.append(key + (f" (can only end as contradicts: {', '.join(d['b'] for d in fixed)}"
                                  f" already beat {a}: an interval over every seed wholly below zero)"
                                  if fixed else ""))
            continue
        head = f"- {key}, **{row['verdict']}**: {row['statement']}."
        if kind == "best":
            beaten = [d for d in ds if d["high"] < 0]
            detail = ("; ".join(span(a, d, margin) for d in (beaten or ds))
                      + (f": {', '.join(d['b'] for d in beaten)} did better than {a}" if beaten
                         else ""))
        else:
            (d,) = ds
            detail = span(a, d, margin)
            undecided = row["verdict"].startswith("undecided")
            if row["verdict"] == "contradicts":
                detail += (f": {d['b']} did better than {a}" if kind == "better"
                           else f": the two differ by more than {within[1:]}")
            elif undecided and kind == "equal" and (d["low"] > 0 or d["high"] < 0):
                better = a if d["low"] > 0 else d["b"]
                detail += (f": the interval excludes zero ({better} did better), but one end lies "
                           f"within {within}, so the rule calls the two neither equal nor "
                           f"different")
            elif undecided and kind == "equal":
                detail += (f": the interval holds zero but reaches beyond {within}, so these "
                           f"seeds cannot tell whether the two are within {within[1:]} of each "
                           f"other")
            elif undecided:
                detail += ": the interval holds zero, so these seeds cannot tell which is better"
        said.append(f"{head} {detail}.")
    if pending:
        said.append(f"- Pending (a side still lacks seeds): {', '.join(pending)}.")
    return "\n".join(said)
