"""mixlib.results: reading runs back, and the per-model summary the book prints."""
import json
import math
import statistics

import pytest

from mixlib import results


def write_run(folder, model, seed, acc, *, epochs=2, images=100, image_size=None):
    run = folder / f"{model}-s{seed}"
    run.mkdir(parents=True)
    record = {"model": model, "dataset": "cifar10", "seed": seed, "epochs": epochs,
              "train_images": images, "test_acc": acc, "train_time_s": 10.0 + seed,
              "params": 1000, "hardware": {"threads": 1}, "commit": "abc",
              "config": {"image_size": image_size}}
    (run / "result.json").write_text(json.dumps(record))


def test_summary_per_model_over_seeds(tmp_path):
    write_run(tmp_path, "a_cifar", 0, 0.50)
    write_run(tmp_path, "a_cifar", 1, 0.54)
    write_run(tmp_path, "b_cifar", 0, 0.60)
    (tmp_path / "unfinished").mkdir()  # a run without result.json is not read
    runs = results.load_runs(tmp_path)
    assert [(r["model"], r["seed"]) for r in runs] == [("a_cifar", 0), ("a_cifar", 1), ("b_cifar", 0)]
    rows = results.summarize(runs)
    assert [r["model"] for r in rows] == ["b_cifar", "a_cifar"]  # best first
    a = rows[1]
    assert a["seeds"] == [0, 1] and a["mean_acc"] == pytest.approx(0.52)
    assert (a["min_acc"], a["max_acc"]) == (0.50, 0.54)
    assert a["std_acc"] == pytest.approx(0.02 * math.sqrt(2))
    assert math.isnan(rows[0]["std_acc"])  # one seed: no spread to report
    assert a["mean_train_time_s"] == pytest.approx(10.5)
    # over the seeds asked for only: a model with none left has no row
    (only,) = results.summarize(runs, seeds=(1,))
    assert (only["model"], only["seeds"], only["mean_acc"]) == ("a_cifar", [1], 0.54)
    for bad in (3, (), "0"):  # a count (verdict's `seeds`) is not a collection of seeds
        with pytest.raises(ValueError, match=f"seeds must be a non-empty collection.*got {bad!r}"):
            results.summarize(runs, seeds=bad)
    assert a["image_size"] is None  # the data set's own size


def test_runs_at_another_image_size_are_another_budget(tmp_path):
    write_run(tmp_path, "a_imagenette", 0, 0.5, image_size=128)
    write_run(tmp_path, "a_imagenette", 1, 0.6, image_size=128)
    assert results.summarize(results.load_runs(tmp_path))[0]["image_size"] == 128
    write_run(tmp_path, "a_imagenette", 2, 0.6, image_size=160)
    with pytest.raises(ValueError, match="different budgets"):
        results.summarize(results.load_runs(tmp_path))


def test_runs_with_different_budgets_are_not_averaged(tmp_path):
    write_run(tmp_path, "a_cifar", 0, 0.5, epochs=2)
    write_run(tmp_path, "a_cifar", 1, 0.6, epochs=3)
    with pytest.raises(ValueError, match="different budgets"):
        results.summarize(results.load_runs(tmp_path))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        results.load_runs(tmp_path / "nowhere")


def test_mixer_of_a_preset():
    assert results.mixer_of("neighborhood_attention_cifar") == "neighborhood_attention"
    assert results.mixer_of("cctt_imagenette") == "cctt"
    assert results.mixer_of("convnext_t") == "convnext_t"


def test_epoch_times_and_the_first_epoch_past_a_goal():
    history = [{"epoch": 1, "test_acc": 0.50, "train_time_s": 100.0},
               {"epoch": 2, "test_acc": 0.91, "train_time_s": 350.0},   # a disturbed epoch
               {"epoch": 3, "test_acc": 0.93, "train_time_s": 450.0}]
    assert results.epoch_seconds(history) == [100.0, 250.0, 100.0]
    assert results.first_reaching(history, 0.9)["epoch"] == 2
    assert results.first_reaching(history, 0.95) is None
    with pytest.raises(ValueError, match="accuracy"):
        results.first_reaching(history, 90)  # a percentage, not a fraction


def hour_run(folder, history, *, amp="bf16", evaluation=None):
    folder.mkdir(parents=True)
    record = {"model": "a_cifar", "seed": 0, "epochs": len(history), "amp": amp,
              "test_acc": history[-1]["test_acc"], "train_time_s": history[-1]["train_time_s"],
              "history": history}
    (folder / "result.json").write_text(json.dumps(record))
    if evaluation is not None:
        (folder / "checkpoint_eval.json").write_text(json.dumps(evaluation))
    return results.load_run(folder)


def test_budget_counts_recorded_time_not_epochs(tmp_path):
    history = [{"epoch": 1, "test_acc": 0.80, "train_time_s": 1000.0},
               {"epoch": 2, "test_acc": 0.92, "train_time_s": 2000.0},
               {"epoch": 3, "test_acc": 0.91, "train_time_s": 3700.0},  # a stop: past the hour
               {"epoch": 4, "test_acc": 0.92, "train_time_s": 4700.0}]
    run = hour_run(tmp_path / "run", history, evaluation={"test_acc_ema": 0.92, "test_acc_weights": 0.93})
    b = results.budget(run, goal=0.9, seconds=3600)
    assert b["inside"]["epoch"] == 2          # by the recorded time, though 3 × median < 3600
    assert b["reached"]["epoch"] == 2
    assert b["best"]["epoch"] == 2            # the first of the tied best
    assert b["median_epoch_s"] == 1000.0
    text = results.describe_budget(run, goal=0.9, seconds=3600)
    assert text.startswith("92.00% at the end (best 92.00%, epoch 2), 78 min recorded")
    assert "92.00% after epoch 2, the last inside 60 min" in text
    assert "90% first after epoch 2, at 33.3 min" in text
    assert text.endswith("93.00% with the weights themselves")
    assert "not reached" in results.describe_budget(run, goal=0.95, seconds=3600)
    assert "no epoch inside 10 min" in results.describe_budget(run, seconds=600)
    assert results.precision(run) == "bf16"


def test_load_run_without_evaluation_and_bad_budgets(tmp_path):
    run = hour_run(tmp_path / "run", [{"epoch": 1, "test_acc": 0.5, "train_time_s": 10.0}], amp="off")
    assert run["checkpoint_eval"] is None and results.precision(run) == "float32"
    assert "last checkpoint" not in results.describe_budget(run)
    with pytest.raises(ValueError, match="seconds"):
        results.budget(run, goal=0.9, seconds=0)
    with pytest.raises(ValueError, match="accuracy"):
        results.budget(run, goal=90, seconds=3600)
    with pytest.raises(FileNotFoundError, match="empty"):
        results.load_run(tmp_path / "empty")
    # a run with no finished epoch (one that diverged in its first) has no budget to read
    with pytest.raises(ValueError, match=r"of a_cifar with seed 0 has no finished epoch.*no budget"):
        results.describe_budget({**run, "history": []})


def test_t_interval_matches_the_t_table():
    from mixlib.results import t_interval
    values = [1.0, 2.0, 4.0]
    sd = statistics.stdev(values)
    interval = t_interval(values)
    assert interval["mean"] == pytest.approx(7 / 3)
    assert interval["high"] - interval["mean"] == pytest.approx(4.303 * sd / 3 ** 0.5)
    assert math.isnan(t_interval([0.5])["low"])
    with pytest.raises(ValueError, match="values"):
        t_interval([])
    for bad in (float("nan"), float("inf")):  # a NaN accuracy is an error, not a NaN interval
        with pytest.raises(ValueError, match=r"values must be finite numbers, got \[1.0, (nan|inf)"):
            t_interval([1.0, bad, 2.0])


def test_paired_difference_pairs_seed_with_seed():
    from mixlib.results import paired_difference
    a = {0: 0.80, 1: 0.70, 2: 0.90}
    b = {0: 0.79, 1: 0.69, 2: 0.89, 3: 0.10}  # seed 3 has no partner: left out
    d = paired_difference(a, b)
    assert d["seeds"] == [0, 1, 2] and d["n"] == 3
    assert d["per_seed"] == pytest.approx([1.0, 1.0, 1.0])
    # each seed's own difference, in the seeds' order
    assert paired_difference({0: 0.8, 1: 0.7}, {0: 0.75, 1: 0.72})["per_seed"] == pytest.approx(
        [5.0, -2.0])
    # unpaired, the seeds' spread (10 points) would swamp the one-point difference; paired, none
    assert d["mean"] == pytest.approx(1.0) and d["high"] - d["low"] == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("kind, diffs, expected", [
    ("better", [(0.5, 1.5)], "reproduces"),
    ("better", [(-1.5, -0.5)], "contradicts"),
    ("better", [(-0.5, 1.5)], "undecided at this scale"),
    ("equal", [(-0.8, 0.9)], "reproduces"),
    ("equal", [(1.2, 3.0)], "contradicts"),
    ("equal", [(0.5, 1.5)], "undecided at this scale"),
    ("best", [(0.1, 1.0), (0.2, 2.0)], "reproduces"),
    ("best", [(0.1, 1.0), (-2.0, -0.1)], "contradicts"),
    ("best", [(0.1, 1.0), (-0.1, 2.0)], "undecided at this scale"),
])
def test_verdict_rules(kind, diffs, expected):
    from mixlib.results import verdict
    differences = [{"low": low, "high": high, "n": 3} for low, high in diffs]
    assert verdict(differences, kind, margin=1.0, seeds=3) == expected
    for fewer in (1, 2):  # the verdict waits for every seed, not for the first interval
        assert verdict([{**differences[0], "n": fewer}] + differences[1:], kind, margin=1.0,
                       seeds=3) == "pending"
    with pytest.raises(ValueError, match="seeds must be at least 2, got 1"):
        verdict(differences, kind, margin=1.0, seeds=1)
    # a NaN end would read as "undecided": an error instead
    with pytest.raises(ValueError, match="finite intervals"):
        verdict([{**differences[0], "high": math.nan}] + differences[1:], kind, margin=1.0, seeds=3)


def test_verdicts_read_the_protocols_claims_off_runs():
    from mixlib import protocol
    from mixlib.results import verdicts
    claim = next(c for c in protocol.CLAIMS if c.key == "learned_over_pooling")
    runs = [{"model": f"{preset}_cifar", "seed": s, "epochs": protocol.EPOCHS, "dataset": "cifar10",
             "test_acc": acc + 0.001 * s}
            for preset, acc in (("dwconv", 0.85), ("pooling", 0.80)) for s in protocol.SEEDS]
    (row,) = verdicts(runs, [claim])
    assert row["verdict"] == "reproduces" and row["differences"][0]["mean"] == pytest.approx(5.0)
    # the same runs at another budget are not this claim's
    other = [{**r, "epochs": protocol.EPOCHS + 1} for r in runs]
    assert verdicts(other, [claim])[0]["verdict"] == "pending"
    table = results.format_verdicts([row, *verdicts(other, [claim])]).splitlines()
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    # every seed's difference is 5.00 points: an interval of zero width
    assert cells[0] == ["`learned_over_pooling` (dwconv − pooling): " + claim.statement, "+5.00",
                        "[+5.00, +5.00]", "3", "reproduces"]
    assert cells[1][1:] == ["–", "–", "0", "pending"]
    assert all(len(line) == 5 for line in cells)  # a | in a statement would add a column
    # a pair trained on two processors is marked, in the row and in the table
    moved = [{**r, "hardware": {"cpu": "B" if (r["model"], r["seed"]) == ("pooling_cifar", 2)
                                else "A"}} for r in runs]
    assert not row["differences"][0]["two_machines"]
    (marked,) = verdicts(moved, [claim])
    assert marked["differences"][0]["two_machines"] and marked["verdict"] == "reproduces"
    assert "| 3* |" in results.format_verdicts([marked])
    # and so is one whose run was resumed on another machine ("hardware" names the last)
    resumed = [{**r, "hardware": {"cpu": "A"}, "machines": ["B", "A"] if r["seed"] == 1 else ["A"]}
               for r in runs]
    assert verdicts(resumed, [claim])[0]["differences"][0]["two_machines"]
    assert [results.trained_on(r) for r in resumed if r["model"] == "dwconv_cifar"] == [
        ("A",), ("B", "A"), ("A",)]
    # a pair with a diverged run (scored at chance) is listed and marked, in both readings
    scored = [{**r, **({"test_acc": 0.1, "diverged": {"epoch": 3}}
                       if (r["model"], r["seed"]) == ("dwconv_cifar", 1) else {})} for r in runs]
    (flagged,) = verdicts(scored, [claim])
    assert flagged["differences"][0]["diverged"] == [1] and not row["differences"][0]["diverged"]
    assert "| 3† |" in results.format_verdicts([flagged])
    assert "; seed 1 diverged, scored at chance)" in results.verdicts_in_words([flagged])
    # one resumed from a checkpoint that predates the list names its last machine only
    older = [{**r, "hardware": {"cpu": "A"}, "machines": [None, "A"]} for r in runs]
    assert not verdicts(older, [claim])[0]["differences"][0]["two_machines"]
    best = next(c for c in protocol.CLAIMS if c.kind == "best")
    rivals = results.format_verdicts(verdicts([], [best])).splitlines()[2:]
    assert [line.split("|")[1].strip() for line in rivals[1:]] == [f"({best.a} − {b})" for b in best.b[1:]]


@pytest.mark.parametrize("value, printed", [
    (-0.0036, "-0.004"), (0.0009, "+0.001"), (-1.0027, "-1.003"), (1.0041, "+1.004"),
    (0.0, "+0.00"), (1.0 + 1e-12, "+1.00"),  # on a line: stays there
    (-4.66, "-4.66"), (0.5, "+0.50"), (2.0049, "+2.00"),  # off every line: two decimals
])
def test_an_interval_end_never_prints_onto_a_line_it_is_off(value, printed):
    assert results._points(value, 1.0) == printed
    # the table and the words print the ends this way
    d = {"b": "b", "mean": value, "low": value, "high": 5.0, "n": 3, "per_seed": [value] * 3}
    row = {"claim": "c", "statement": "s", "a": "a", "kind": "better", "differences": [d],
           "margin": 1.0, "seeds": 3, "verdict": "reproduces"}
    assert f"[{printed}, +5.00]" in results.format_verdicts([row])
    assert f"[{printed}, +5.00]" in results.verdicts_in_words([row])
    # and each row's own margin: an end 0.0036 off ±2 gets the decimals that ±1 would not give it
    wide = {**row, "margin": 2.0, "differences": [{**d, "low": -2.0036}]}
    assert "[-2.004, +5.00]" in results.format_verdicts([wide])
    assert "[-2.004, +5.00]" in results.verdicts_in_words([wide])


def test_verdicts_in_words_say_the_verdict_and_what_the_interval_adds():
    from mixlib.results import verdict, verdicts_in_words

    def row(key, kind, *diffs, margin=1.0, seeds=3):
        differences = [{"b": b, "mean": (low + high) / 2, "low": low, "high": high, "n": n,
                        "per_seed": [low, (low + high) / 2, high][:n]} for b, low, high, n in diffs]
        return {"claim": key, "statement": f"{key} holds", "a": "a", "kind": kind,
                "differences": differences, "margin": margin, "seeds": seeds,
                "verdict": verdict(differences, kind, margin=margin, seeds=seeds)}

    def said(one):
        (line,) = verdicts_in_words([one]).splitlines()
        return line

    assert said(row("up", "better", ("b", 0.5, 2.0, 3))) == (
        "- `up`, **reproduces**: up holds. a − b = +1.25 points [+0.50, +2.00] "
        "(by seed: +0.50, +1.25, +2.00).")
    assert said(row("down", "better", ("b", -2.0, -0.5, 3))).endswith(": b did better than a.")
    assert said(row("open", "better", ("b", -1.0, 2.0, 3))).endswith(
        "the interval holds zero, so these seeds cannot tell which is better.")
    # "about equal", undecided, yet the interval excludes zero: the direction is said, both ways
    assert "excludes zero (a did better)" in said(row("eq", "equal", ("b", 0.5, 9.0, 3)))
    assert "excludes zero (b did better)" in said(row("eq", "equal", ("b", -9.0, -0.5, 3)))
    assert said(row("eq", "equal", ("b", -0.5, 9.0, 3))).endswith(
        "the interval holds zero but reaches beyond ±1 point, so these seeds cannot tell whether "
        "the two are within 1 point of each other.")
    assert said(row("far", "equal", ("b", 1.5, 9.0, 3))).endswith(
        "the two differ by more than 1 point.")
    assert said(row("best", "best", ("b", 0.5, 2.0, 3), ("c", -3.0, -1.0, 3))).endswith(
        "a − c = -2.00 points [-3.00, -1.00] (by seed: -3.00, -2.00, -1.00): c did better than a.")
    # pending: named; a finished rival below zero already fixes a "best" claim, an unfinished
    # one does not
    assert said(row("wait", "best", ("b", -3.0, -1.0, 3), ("c", 0.0, 1.0, 1))) == (
        "- Pending (a side still lacks seeds): `wait` (can only end as contradicts: b already "
        "beat a: an interval over every seed wholly below zero).")
    assert said(row("wait", "best", ("b", -3.0, -1.0, 2), ("c", 0.0, 1.0, 3))) == (
        "- Pending (a side still lacks seeds): `wait`.")
    assert said(row("wait", "better", ("b", -3.0, -1.0, 2))) == (
        "- Pending (a side still lacks seeds): `wait`.")
    # each row is read with the margin and seeds its verdict was drawn with
    assert said(row("eq", "equal", ("b", -0.5, 9.0, 3), margin=2.5)).endswith(
        "reaches beyond ±2.5 points, so these seeds cannot tell whether the two are within "
        "2.5 points of each other.")
    assert said(row("wait", "best", ("b", -3.0, -1.0, 3), ("c", 0.0, 1.0, 3), seeds=5)) == (
        "- Pending (a side still lacks seeds): `wait`.")  # 3 of 5 seeds: b's interval can move
    assert said(row("wait", "best", ("b", -3.0, -1.0, 2), ("c", 0.0, 1.0, 1), seeds=2)) == (
        "- Pending (a side still lacks seeds): `wait` (can only end as contradicts: b already "
        "beat a: an interval over every seed wholly below zero).")  # 2 of 2 seeds: b is done


def test_verdicts_compare_cifar_runs_at_the_e_the_pilot_decided():
    from mixlib import protocol
    from mixlib.results import pilot, verdicts
    claim = next(c for c in protocol.CLAIMS if c.key == "learned_over_pooling")
    e, e2 = protocol.EPOCHS, 2 * protocol.EPOCHS
    first, second = protocol.PILOT
    pilot_runs = [{"model": f"{preset}_cifar", "seed": 0, "epochs": epochs, "dataset": "cifar10",
                   "test_acc": acc}
                  for preset, epochs, acc in ((first, e, 0.84), (second, e, 0.80),
                                              (first, e2, 0.85), (second, e2, 0.86))]
    assert pilot(pilot_runs) == {"epochs": e2, "accuracy": {
        (first, e): 0.84, (second, e): 0.80, (first, e2): 0.85, (second, e2): 0.86}}
    assert pilot(pilot_runs[:3])["epochs"] is None
    at = {budget: [{"model": f"{preset}_cifar", "seed": s, "epochs": budget, "dataset": "cifar10",
                    "test_acc": acc + 0.001 * s}
                   for preset, acc in (("dwconv", 0.85), ("pooling", 0.80)) for s in protocol.SEEDS
                   # a pilot run is its preset's seed 0 at that budget, not a second one
                   if not any((p["model"], p["epochs"], p["seed"]) == (f"{preset}_cifar", budget, s)
                              for p in pilot_runs)]
          for budget in (e, e2)}
    # flipped: the claim reads the runs at 2E, pending until they exist; the runs at E do not count
    (row,) = verdicts(pilot_runs + at[e], [claim])
    assert (row["epochs"], row["verdict"]) == (e2, "pending")
    (row,) = verdicts(pilot_runs + at[e2], [claim])
    assert (row["epochs"], row["verdict"]) == (e2, "reproduces")
    # an unfinished pilot leaves E as planned
    assert verdicts(pilot_runs[:3] + at[e], [claim])[0]["epochs"] == e


def test_summary_rows_carry_the_t_interval_of_the_mean(tmp_path):
    for seed, acc in enumerate((0.60, 0.62, 0.64)):
        write_run(tmp_path, "m_cifar", seed, acc)
    (row,) = results.summarize(results.load_runs(tmp_path))
    half = 4.303 * 0.02 / 3 ** 0.5
    assert row["ci_low"] == pytest.approx(0.62 - half) and row["ci_high"] == pytest.approx(0.62 + half)


def test_results_folder_clones_the_repository_whole_or_says_why_not(tmp_path, monkeypatch):
    """A mixlib without results/ beside it (a pip install) clones the repository into the cache,
    under a temporary name renamed into place; a failed clone leaves nothing and names the
    repository and the folder."""
    import subprocess
    from mixlib import paths
    monkeypatch.delenv("MIXLIB_RESULTS", raising=False)
    monkeypatch.setenv("MIXLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site" / "mixlib" / "paths.py"))
    monkeypatch.setattr(paths, "REPOSITORY", str(tmp_path / "no-such-repository"))
    with pytest.raises(FileNotFoundError, match=r"cloning .*no-such-repository into .*"
                       r"token-mixers failed"):
        paths.results_folder()
    assert list((tmp_path / "cache").iterdir()) == []  # no half-made clone
    with pytest.raises(FileNotFoundError, match="fetch=False"):
        paths.results_folder(fetch=False)
    origin = tmp_path / "origin"
    (origin / "results").mkdir(parents=True)
    (origin / "results" / "marker.txt").write_text("committed")
    git = ["git", "-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(origin)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "results"], check=True)
    monkeypatch.setattr(paths, "REPOSITORY", origin.as_uri())
    folder = paths.results_folder()
    assert folder == tmp_path / "cache" / "token-mixers" / "results"
    assert (folder / "marker.txt").read_text() == "committed"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["token-mixers"]


def test_results_folder_is_the_one_beside_the_code_or_the_one_named(tmp_path, monkeypatch):
    from pathlib import Path
    import mixlib
    monkeypatch.delenv("MIXLIB_RESULTS", raising=False)
    assert results.results_folder(fetch=False) == Path(mixlib.__file__).resolve().parents[1] / "results"
    monkeypatch.setenv("MIXLIB_RESULTS", str(tmp_path))
    assert results.results_folder() == tmp_path


def test_a_run_without_a_finite_accuracy_is_named(tmp_path):
    for name, acc in (("nan", float("nan")), ("none", None)):
        write_run(tmp_path / name, "a_cifar", 0, acc)
        runs = results.load_runs(tmp_path / name)  # read: its times still count
        with pytest.raises(ValueError, match=rf"run of a_cifar with seed 0 records test_acc={acc}"):
            results.summarize(runs)
        with pytest.raises(ValueError, match="run of a_cifar at 2 epochs on cifar10 with seed 0"):
            results.accuracies(runs, "a_cifar", epochs=2, dataset="cifar10")


def test_a_repeated_seed_or_another_recipe_is_not_averaged(tmp_path):
    write_run(tmp_path / "a", "a_cifar", 0, 0.5)
    write_run(tmp_path / "a", "a_cifar", 1, 0.6)
    runs = results.load_runs(tmp_path / "a")
    assert results.summarize(runs)[0]["seeds"] == [0, 1]
    # a second run of seed 0 (another folder): it would count as a third seed
    with pytest.raises(ValueError, match=r"runs of a_cifar repeat seed\(s\) \[0\]"):
        results.summarize(runs + [dict(runs[0], test_acc=0.7)])
    # a bf16 run, or one with other augmentation, is another experiment
    for changed in ({"amp": "bf16"}, {"config": {"image_size": None, "cutout": 12}}):
        with pytest.raises(ValueError, match="different budgets or recipes .*differ in (amp|cutout)"):
            results.summarize([runs[0], {**runs[1], **changed}])
        with pytest.raises(ValueError, match="a_cifar at 2 epochs on cifar10 have different"):
            results.accuracies([runs[0], {**runs[1], **changed}], "a_cifar", epochs=2,
                               dataset="cifar10")


def test_verdicts_read_the_protocols_seeds_only():
    from mixlib import protocol
    from mixlib.results import verdicts
    claim = next(c for c in protocol.CLAIMS if c.key == "learned_over_pooling")
    seeds = [*protocol.SEEDS[:-1], max(protocol.SEEDS) + 1]  # the last seed missing, another there
    runs = [{"model": f"{preset}_cifar", "seed": s, "epochs": protocol.EPOCHS, "dataset": "cifar10",
             "test_acc": acc + 0.001 * s}
            for preset, acc in (("dwconv", 0.85), ("pooling", 0.80)) for s in seeds]
    (row,) = verdicts(runs, [claim])
    assert row["verdict"] == "pending" and row["differences"][0]["seeds"] == list(protocol.SEEDS[:-1])


def test_an_equal_claim_at_exactly_the_margin_reproduces():
    from mixlib.results import paired_difference, verdict
    # every seed exactly one point apart: 100 * (0.81 - 0.80) is 1.0000000000000009 in floats
    d = paired_difference({0: 0.81, 1: 0.8238, 2: 0.81}, {0: 0.80, 1: 0.8138, 2: 0.80})
    assert d["high"] > 1.0  # the float rounding the rule must not read as a difference
    assert verdict([d], "equal", margin=1.0, seeds=3) == "reproduces"
    beyond = paired_difference({0: 0.8101, 1: 0.8101, 2: 0.8101}, {0: 0.80, 1: 0.80, 2: 0.80})
    assert verdict([beyond], "equal", margin=1.0, seeds=3) == "contradicts"


def test_a_verdict_needs_a_difference():
    from mixlib.results import verdict
    for kind in ("better", "best"):
        with pytest.raises(ValueError, match="differences must hold one per rival, got none"):
            verdict([], kind, margin=1.0, seeds=3)


def test_equal_time_reads_each_model_after_the_epochs_it_fits_in_the_fastests_time():
    def run(model, seed, accs):
        return {"model": model, "seed": seed, "epochs": 4, "dataset": "cifar10", "test_acc": accs[-1],
                "history": [{"test_acc": a} for a in accs]}
    runs = [run("fast", 0, [0.5, 0.6, 0.7, 0.8]), run("fast", 1, [0.5, 0.6, 0.7, 0.9]),
            run("half", 0, [0.4, 0.55, 0.75, 0.85]), run("slow", 0, [0.3, 0.4, 0.5, 0.6]),
            run("fast", 3, [0.1, 0.1, 0.1, 0.1])]  # a seed outside the protocol's: not read
    # 100 images an epoch: "fast" takes 1 s an epoch, "half" 2 s, "slow" 5 s, "unrun" 1.25 s
    budget_s, rows = results.equal_time(runs, {"fast": 100, "half": 50, "slow": 20, "unrun": 80},
                                        epochs=4, dataset="cifar10", train_images=100)
    assert budget_s == pytest.approx(4.0)
    by = {row["model"]: row for row in rows}
    assert [row["model"] for row in rows] == ["fast", "half", "slow", "unrun"]
    assert (by["fast"]["epochs"], by["fast"]["n"]) == (4, 2)
    assert by["fast"]["mean_acc"] == pytest.approx(0.85)  # the last epoch, over both seeds
    assert (by["half"]["epochs"], by["half"]["mean_acc"]) == (2, 0.55)  # after epoch 2, not 4
    assert (by["slow"]["epochs"], by["slow"]["mean_acc"], by["slow"]["n"]) == (0, None, 0)
    assert (by["unrun"]["epochs"], by["unrun"]["mean_acc"]) == (3, None)  # fits 3, none finished


def test_equal_time_reads_a_run_that_diverged_before_the_epoch_at_its_score():
    def run(seed, accs, **extra):
        return {"model": "m", "seed": seed, "epochs": 4, "dataset": "cifar10",
                "test_acc": accs[-1], "history": [{"test_acc": a} for a in accs], **extra}
    # seed 1 diverged in epoch 3: the protocol scores it at chance, 0.1
    runs = [run(0, [0.5, 0.6, 0.7, 0.8]), {**run(1, [0.4, 0.5]), "test_acc": 0.1,
                                           "diverged": {"step": 10, "epoch": 3}}]
    row = results.equal_time(runs, {"m": 100}, epochs=4, dataset="cifar10",
                             train_images=100)[1][0]
    assert (row["epochs"], row["mean_acc"]) == (4, pytest.approx((0.8 + 0.1) / 2))
    # in the time of a model twice as fast, "m" fits 2 epochs: seed 1 had them
    row = results.equal_time(runs, {"m": 100, "twice": 200}, epochs=4, dataset="cifar10",
                             train_images=100)[1][0]
    assert (row["epochs"], row["mean_acc"]) == (2, pytest.approx((0.6 + 0.5) / 2))
    broken = [run(0, [0.5, 0.6])]  # a short history without the divergence is an error
    with pytest.raises(ValueError, match="records 2 epochs of history, not the 4 read"):
        results.equal_time(broken, {"m": 100}, epochs=4, dataset="cifar10", train_images=100)
