"""The comparison's protocol and its sweep: what runs, in which order, and that an interrupted
sweep picks up where it stopped without running anything twice."""
import contextlib
import fcntl
import io
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from mixlib import models, protocol, sweep

ROOT = Path(__file__).resolve().parents[1]


def test_every_protocol_run_is_a_preset_and_runs_once():
    names = [run.name for run in protocol.RUNS]
    assert len(names) == len(set(names))
    assert {run.model for run in protocol.RUNS} <= set(models.available())
    # the pilot comes first: its presets at E and 2E
    assert [(r.preset, r.epochs) for r in protocol.RUNS[:4]] == \
        [(p, protocol.EPOCHS) for p in protocol.PILOT] + [(p, 2 * protocol.EPOCHS) for p in protocol.PILOT]
    assert protocol.EPOCHS >= 15 and len(protocol.SEEDS) >= 3
    # seed 0 of every CIFAR-10 preset, the ablations' too, before any second seed; then the
    # later seeds preset by preset (CLAIM_ORDER, both seeds of one before the next); Imagenette
    # last
    cifar = [r for r in protocol.RUNS if r.data == "cifar10"]
    assert protocol.RUNS[:len(cifar)] == tuple(cifar)
    first_seed1 = next(i for i, r in enumerate(cifar) if r.seed == 1)
    assert {r.preset for r in cifar[:first_seed1]} == set(protocol.MAIN + protocol.ABLATIONS)
    assert {r.seed for r in cifar[:first_seed1]} == {0}
    assert [(r.preset, r.seed) for r in cifar[first_seed1:]] == \
        [(p, s) for p in protocol.CLAIM_ORDER for s in protocol.SEEDS[1:]]


def test_the_later_seeds_complete_the_cifar_claims_one_by_one():
    # every preset exactly once; each one's later seeds are run for the next claim to complete
    # (none for a claim further on), and the presets in no claim come after every claim is done
    order = protocol.CLAIM_ORDER
    assert sorted(order) == sorted(protocol.MAIN + protocol.ABLATIONS)
    assert set(protocol.LATER_SEED_MINUTES) == set(order)
    claims = [c.presets for c in protocol.CLAIMS if c.data == "cifar10"]
    done_at = [max(order.index(p) for p in claim) for claim in claims]
    for i, preset in enumerate(order):
        upcoming = [claim for claim, end in zip(claims, done_at) if end >= i]
        if not upcoming:  # every claim complete: only presets no claim needs are left
            assert all(preset not in claim for claim in claims), preset
            continue
        first_end = min(end for claim, end in zip(claims, done_at) if end >= i)
        next_claims = [c for c, end in zip(claims, done_at) if end == first_end]
        assert any(preset in claim for claim in next_claims), preset


def _claims(*pairs):
    return [protocol.Claim(f"c{i}", "", "", a, b) for i, (a, b) in enumerate(pairs)]


@pytest.mark.parametrize("c_minutes, expected", [
    # c completes two claims at once: 100 / 2 < e and f's 90, so it comes first
    (100, ("a", "b", "c", "e", "f", "g")),
    # at 200 / 2 it costs more per claim than e and f's one claim
    (200, ("a", "b", "e", "f", "c", "g")),
])
def test_claim_order_prices_a_claim_per_claim_it_completes(c_minutes, expected):
    claims = _claims(("a", "b"), ("a", "c"), ("b", "c"), ("e", "f"))
    minutes = {"a": 40, "b": 40, "c": c_minutes, "e": 45, "f": 45, "g": 1}
    # a and b first (80, one claim, under e and f's 90); g, in no claim, last however cheap
    assert protocol.claim_order(minutes, claims) == expected


def test_claim_order_gives_equal_prices_to_the_claim_listed_first():
    minutes = {"a": 10, "b": 10, "c": 10, "d": 10}
    assert protocol.claim_order(minutes, _claims(("c", "d"), ("a", "b"))) == ("c", "d", "a", "b")
    assert protocol.claim_order(minutes, _claims(("a", "b"), ("c", "d"))) == ("a", "b", "c", "d")


@pytest.mark.parametrize("at_e, at_2e, expected", [
    ((0.84, 0.80), (0.87, 0.83), protocol.EPOCHS),      # the same order: E stands
    ((0.84, 0.80), (0.85, 0.86), 2 * protocol.EPOCHS),  # flipped: E becomes 2E
    ((0.80, 0.84), (0.86, 0.85), 2 * protocol.EPOCHS),  # flipped the other way
    ((0.84, 0.84), (0.87, 0.83), 2 * protocol.EPOCHS),  # a tie is no order
])
def test_the_pilot_decides_e_by_the_order_of_its_two_presets(at_e, at_2e, expected):
    first, second = protocol.PILOT
    accuracy = {(first, protocol.EPOCHS): at_e[0], (second, protocol.EPOCHS): at_e[1],
                (first, 2 * protocol.EPOCHS): at_2e[0], (second, 2 * protocol.EPOCHS): at_2e[1]}
    assert protocol.pilot_epochs(accuracy) == expected
    del accuracy[(second, 2 * protocol.EPOCHS)]
    assert protocol.pilot_epochs(accuracy) is None  # a pilot run missing: undecided


def test_at_2e_every_cifar_run_after_the_pilot_moves_and_nothing_else_does():
    at_e = protocol.runs(cifar_epochs=protocol.EPOCHS)
    at_2e = protocol.runs(cifar_epochs=2 * protocol.EPOCHS)
    assert at_e == protocol.RUNS and len(at_2e) == len(at_e)
    assert at_2e[:4] == protocol.PILOT_RUNS == at_e[:4]
    for before, after in zip(at_e[4:], at_2e[4:]):
        assert (before.preset, before.seed, before.data) == (after.preset, after.seed, after.data)
        assert after.epochs == (2 * protocol.EPOCHS if after.data == "cifar10" else before.epochs)
    assert len({r.name for r in at_2e}) == len(at_2e)
    with pytest.raises(ValueError, match="cifar_epochs.*20"):
        protocol.runs(cifar_epochs=20)


def _record(run: protocol.Run, test_acc: float) -> str:
    """A result.json of `run` with what the pilot reads of it."""
    return json.dumps({"model": run.model, "seed": run.seed, "epochs": run.epochs,
                       "dataset": run.data, "test_acc": test_acc})


def test_the_sweep_plans_at_the_e_its_finished_pilot_decided(tmp_path):
    results = tmp_path / "results"
    first, second = protocol.PILOT
    flipped = {(first, protocol.EPOCHS): 0.84, (second, protocol.EPOCHS): 0.80,
               (first, 2 * protocol.EPOCHS): 0.85, (second, 2 * protocol.EPOCHS): 0.86}
    for run in protocol.PILOT_RUNS[:3]:
        (results / run.data / run.name).mkdir(parents=True)
        (results / run.data / run.name / "result.json").write_text(
            _record(run, flipped[(run.preset, run.epochs)]))
    assert sweep.decided_epochs(results) == protocol.EPOCHS  # three of four: E for now
    assert sweep.select(["lka_cifar"], results=results)[0].epochs == protocol.EPOCHS
    last = protocol.PILOT_RUNS[3]
    (results / last.data / last.name).mkdir(parents=True)
    (results / last.data / last.name / "result.json").write_text(_record(last, 0.86))
    assert sweep.decided_epochs(results) == 2 * protocol.EPOCHS
    assert {r.epochs for r in sweep.select(["lka_cifar"], results=results)} == {2 * protocol.EPOCHS}
    assert sweep.keeps_weights(protocol.Run("lka", 0, 2 * protocol.EPOCHS), cifar_epochs=2 * protocol.EPOCHS)
    assert not sweep.keeps_weights(protocol.Run("lka", 0), cifar_epochs=2 * protocol.EPOCHS)
    # a run named at the budget the pilot did not choose is known, just not planned any more
    assert sweep.select(["lka_cifar-s0-e15"], results=results) == []
    with pytest.raises(ValueError, match=r"only=\['lka_cifar-s0-e45'\] names .*lists as no run"):
        sweep.select(["lka_cifar-s0-e45"], results=results)


@pytest.mark.parametrize("last_acc, exported", [
    (0.86, ["dwconv_cifar-s0-e30", "neighborhood_attention_cifar-s0-e30"]),  # flipped: both at 2E
    (0.80, []),                                                              # E stands: none
])
def test_the_pilots_last_run_keeps_the_weights_at_the_budget_it_decides(tmp_path, monkeypatch,
                                                                        last_acc, exported):
    results, work, weights = tmp_path / "results", tmp_path / "work", tmp_path / "weights"
    accuracy = dict(zip(protocol.PILOT_RUNS, (0.84, 0.80, 0.85, last_acc)))
    for run, acc in accuracy.items():
        (work / run.name).mkdir(parents=True)
        for name in ("metrics.jsonl", "result.json"):
            (work / run.name / name).write_text(_record(run, acc))
    for run in protocol.PILOT_RUNS[:3]:  # finished before
        (results / run.data / run.name).mkdir(parents=True)
        (results / run.data / run.name / "result.json").write_text(_record(run, accuracy[run]))
    calls = []
    monkeypatch.setattr(sweep, "export_weights", lambda run, work, folder: calls.append(run.name) or folder)
    sweep._copy_result(protocol.PILOT_RUNS[3], work, results, weights, log=pytest.fail)
    assert calls == exported
    if exported:  # the other 2E run finished in a work folder that is gone: said, not skipped
        shutil.rmtree(work / exported[0])
        calls.clear()
        said = []
        sweep._copy_result(protocol.PILOT_RUNS[3], work, results, weights, log=said.append)
        assert calls == exported[1:] and len(said) == 1
        assert said[0].startswith(f"{weights / 'dwconv_cifar.pt'} does not hold {exported[0]}'s")


def test_a_sweep_with_two_workers_starts_each_run_once_and_at_most_max_runs(tmp_path, monkeypatch):
    import threading
    results, work = tmp_path / "results", tmp_path / "work"
    planned = [protocol.Run("lka", seed) for seed in protocol.SEEDS] + [protocol.Run("elsa", 0)]
    trained, both_running = [], threading.Barrier(2, timeout=10)

    def fake_run_one(run, *, results, **_):
        trained.append(run.name)
        if len(trained) <= 2:
            both_running.wait()  # the first two overlap: two workers really run at once
        (results / run.data / run.name).mkdir(parents=True)
        (results / run.data / run.name / "result.json").write_text("{}")
        return True

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    assert sweep.sweep(lambda: planned, results=results, work=work, workers=2, max_runs=3) == 3
    assert sorted(trained) == sorted(r.name for r in planned[:3])


def test_a_runs_error_is_logged_and_its_worker_goes_on(tmp_path, monkeypatch):
    """An exception in one run (a full disk while copying) is said when it happens, and the
    worker trains the next run instead of ending unseen while the other works alone."""
    results, work = tmp_path / "results", tmp_path / "work"
    planned = [protocol.Run("lka", 0), protocol.Run("lka", 1)]

    def fake_run_one(run, *, results, **_):
        if run is planned[0]:
            raise OSError("No space left on device")
        (results / run.data / run.name).mkdir(parents=True)
        (results / run.data / run.name / "result.json").write_text("{}")
        return True

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    messages = []
    assert sweep.sweep(planned, results=results, work=work, workers=1, log=messages.append) == 1
    assert messages == [f"failed {planned[0].name}: OSError: No space left on device"]
    assert "in fake_run_one" in (work / f"{planned[0].name}.log").read_text()  # the traceback


def test_a_sweep_under_nohup_leaves_hang_ups_ignored(tmp_path, monkeypatch):
    """nohup asked for hang-ups to be ignored: the sweep does not take them over, not even
    while it runs."""
    seen = []
    monkeypatch.setattr(sweep, "run_one", lambda run, **_: seen.append(signal.getsignal(
        signal.SIGHUP)) or False)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sweep.sweep([protocol.Run("lka", 0)], results=tmp_path / "r", work=tmp_path / "w",
                    workers=1, log=lambda _: None)
        assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_sweep_leaves_a_run_that_another_training_holds(tmp_path, monkeypatch):
    """A training that outlived a killed sweep still holds its folder: the next sweep neither
    starts it a second time nor counts it as failed; it says so once and trains the others."""
    results, work = tmp_path / "results", tmp_path / "work"
    held, free = protocol.Run("lka", 0), protocol.Run("lka", 1)
    trained = []

    def fake_run_one(run, *, results, **_):
        trained.append(run.name)
        return False

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    (work / held.name).mkdir(parents=True)
    fd = os.open(work / held.name, os.O_RDONLY | os.O_DIRECTORY)
    messages = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as mixlib.train holds it
        assert sweep.sweep([held, free], results=results, work=work, workers=1,
                           log=messages.append) == 0
    finally:
        os.close(fd)
    assert trained == [free.name]
    assert [m for m in messages if held.name in m] == [
        f"not starting {held.name}: a training still holds {work / held.name} (from a sweep "
        f"that was killed?); its result is copied once it has finished"]


def test_a_commit_holds_only_its_runs_files_from_any_working_directory(tmp_path, monkeypatch):
    """`git -C repo` reads a relative path from the repository's top: the sweep passes absolute
    ones. A refusal that waiting cannot mend (an ignored file) is logged at once, in git's
    words; files a person staged stay staged and out of the run's commit."""
    import subprocess
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for key, value in (("user.email", "t@t"), ("user.name", "t")):
        subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)
    (repo / "other.txt").write_text("staged by a person\n")
    (repo / ".gitignore").write_text("*.pt\n")
    subprocess.run(["git", "-C", str(repo), "add", "other.txt"], check=True)
    folder = repo / "results" / "sweep" / "cifar10" / "x"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text("{}")
    (repo / "book").mkdir()
    monkeypatch.chdir(repo / "book")  # --results given relative to another directory
    said = []
    sweep._commit([Path("../results/sweep/cifar10/x/result.json")], "m", repo, said.append)
    assert said == []
    shown = subprocess.run(["git", "-C", str(repo), "show", "--name-only", "--format=", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["results/sweep/cifar10/x/result.json"]
    assert "A  other.txt" in subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                                            capture_output=True, text=True).stdout
    # a sweep that starts names what an earlier one copied and left uncommitted, and only that
    (folder.parent / "y").mkdir()
    (folder.parent / "y" / "result.json").write_text("{}")
    (repo / "results" / "sweep" / "README.md").write_text("a person's notes\n")  # not a run's
    sweep.sweep([], results=repo / "results" / "sweep", work=tmp_path / "work", commit_repo=repo,
                log=said.append)
    assert said == ["1 file(s) of finished runs are not committed (a sweep ended before its "
                    "commit?): results/sweep/cifar10/y/result.json; commit them by hand"]
    said.clear()
    (folder / "w.pt").write_bytes(b"0")
    monkeypatch.setattr(sweep.time, "sleep", lambda _: pytest.fail("waited for git"))
    sweep._commit([folder / "w.pt"], "m", repo, said.append)
    (message,) = said
    assert message.startswith(f"could not commit ['{folder / 'w.pt'}'] (git add: ") and \
        "ignored" in message and message.endswith("commit them by hand")


def test_a_sweep_asks_its_plan_again_before_each_run(tmp_path, monkeypatch):
    """A pilot that finishes during a sweep changes what the sweep trains next; a run that was
    started is not started again in the same sweep, even if it failed."""
    results, work = tmp_path / "results", tmp_path / "work"
    a, b, c = protocol.Run("lka", 0), protocol.Run("lka", 1), protocol.Run("lka", 0, 30)
    trained = []

    def fake_run_one(run, *, results, **_):
        trained.append(run.name)
        if run is not b:  # b fails: no result
            (results / run.data / run.name).mkdir(parents=True)
            (results / run.data / run.name / "result.json").write_text("{}")
        return run is not b

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    plans = iter([[a, b], [b, c], [b, c], [b, c]])
    assert sweep.sweep(lambda: next(plans), results=results, work=work, workers=1) == 2
    assert trained == [a.name, b.name, c.name]



def _finished(results, run, train_time_s):
    folder = results / run.data / run.name
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(
        {"model": run.model, "dataset": run.data, "seed": run.seed, "epochs": run.epochs,
         "train_time_s": train_time_s}))


def test_a_runs_estimate_is_the_scaled_benchmark_else_its_presets_runs(tmp_path):
    results, work = tmp_path / "results" / "sweep", tmp_path / "work"
    per_epoch = sweep.MARGIN * sweep._with_evaluation("cifar10")
    # lka: three finished runs at 60, 90 and 300 s per epoch (median 90); pooling: one at 40
    for seed, seconds in zip(protocol.SEEDS, (60, 90, 300)):
        _finished(results, protocol.Run("lka", seed), 15 * seconds)
    _finished(results, protocol.Run("pooling", 0), 15 * 40)
    todo = protocol.Run("lka", 0, 30)
    # no benchmark: a preset's own runs time it
    assert sweep.estimate_s(todo, results, work) == pytest.approx(per_epoch * 30 * 90)
    # a stopped run has only the epochs it has left
    (work / todo.name).mkdir(parents=True)
    (work / todo.name / "metrics.jsonl").write_text("{}\n" * 20)
    assert sweep.estimate_s(todo, results, work) == pytest.approx(per_epoch * 10 * 90)
    # a line cut short by a kill is no epoch done
    (work / todo.name / "metrics.jsonl").write_text("{}\n" * 20 + '{"epo')
    assert sweep.estimate_s(todo, results, work) == pytest.approx(per_epoch * 10 * 90)
    # a run that finished in the work folder needs only its copy, estimate or not
    done_here = protocol.Run("relative_attention", 0)
    (work / done_here.name).mkdir()
    (work / done_here.name / "result.json").write_text("{}")
    assert sweep.estimate_s(done_here, results, work) == 0.0

    elsa = protocol.Run("elsa", 0)
    assert sweep.estimate_s(elsa, results, work) is None  # no run and no benchmark
    bench = results.parent / sweep.BENCH["cifar10"]
    bench.parent.mkdir(parents=True)
    # the benchmark says 50,000 images take 100 s for lka, 20 s for pooling, 50 s for elsa: the
    # runs took 0.6, 0.9 and 3.0 (lka) and 2.0 (pooling) times that, median 1.45
    speeds = {"lka_cifar": 500, "pooling_cifar": 2500, "elsa_cifar": 1000}
    bench.write_text(json.dumps({"rows": [{"model": m, "train_img_s_turns": v}
                                          for m, v in speeds.items()]}))
    assert sweep.estimate_s(elsa, results, work) == pytest.approx(per_epoch * 15 * 1.45 * 50)
    # a benchmarked preset is timed the same way, whatever its own runs took: pooling's one run
    # (twice its benchmark, as a run of older, slower code would be) does not set its estimate
    pooling = protocol.Run("pooling", 1)
    assert sweep.estimate_s(pooling, results, work) == pytest.approx(per_epoch * 15 * 1.45 * 20)
    assert sweep.estimate_s(todo, results, work) == pytest.approx(per_epoch * 10 * 1.45 * 100)
    assert sweep.estimate_s(protocol.Run("gnconv", 0), results, work) is None  # not benchmarked
    _finished(results, protocol.Run("gnconv", 0), 15 * 70)  # ... but it has a run
    assert sweep.estimate_s(protocol.Run("gnconv", 1), results, work) == \
        pytest.approx(per_epoch * 15 * 70)
    lka_128 = protocol.Run("lka", 0, epochs=10, data="imagenette")
    assert sweep.estimate_s(lka_128, results, work) is None  # Imagenette's benchmark is missing
    # Imagenette's own benchmark, scaled by the CIFAR-10 runs' ratio: 9,469 images at 100 img/s
    (results.parent / sweep.BENCH["imagenette"]).write_text(json.dumps(
        {"rows": [{"model": "lka_imagenette", "train_img_s_turns": 100}]}))
    per_128 = sweep.MARGIN * sweep._with_evaluation("imagenette") * 10
    assert sweep.estimate_s(lka_128, results, work) == \
        pytest.approx(per_128 * 1.45 * sweep.TRAIN_IMAGES["imagenette"] / 100)
    # once an Imagenette run has finished (at 2.0 times its benchmark), Imagenette's own ratio
    # scales it, not the CIFAR-10 runs'
    _finished(results, protocol.Run("lka", 1, epochs=10, data="imagenette"),
              10 * 2.0 * sweep.TRAIN_IMAGES["imagenette"] / 100)
    assert sweep.estimate_s(lka_128, results, work) == \
        pytest.approx(per_128 * 2.0 * sweep.TRAIN_IMAGES["imagenette"] / 100)
    assert sweep.estimate_s(elsa, results, work) == pytest.approx(per_epoch * 15 * 1.45 * 50)
    # a run that diverged in its first epoch recorded minutes of its 15 epochs: not a pace
    _finished(results, protocol.Run("pooling", 2), 60)
    folder = results / "cifar10" / protocol.Run("pooling", 2).name
    diverged = {**json.loads((folder / "result.json").read_text()), "diverged": {"step": 9}}
    (folder / "result.json").write_text(json.dumps(diverged))
    assert sweep.estimate_s(elsa, results, work) == pytest.approx(per_epoch * 15 * 1.45 * 50)


def test_with_hours_a_sweep_starts_only_runs_that_end_in_time(tmp_path, monkeypatch):
    """A run estimated past the deadline, or with no estimate, is left (and said so once); a
    shorter one after it in the plan starts instead."""
    results, work = tmp_path / "results", tmp_path / "work"
    long, unknown, short = protocol.Run("lka", 0), protocol.Run("elsa", 0), protocol.Run("pooling", 0)
    needs = {long.name: 3 * 3600, unknown.name: None, short.name: 3600}
    monkeypatch.setattr(sweep, "estimate_s", lambda run, results, work: needs[run.name])
    trained, said = [], []

    def fake_run_one(run, *, results, **_):
        trained.append(run.name)
        return True  # leaves no result: the plan still lists all three as pending

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    plan = [long, unknown, short]
    assert sweep.sweep(lambda: plan, results=results, work=work, workers=1, hours=2,
                       log=said.append) == 1
    assert trained == [short.name]
    assert [m.split(":")[0] for m in said] == [f"not starting {long.name}",
                                                f"not starting {unknown.name}"]
    assert "needs ~180 min" in said[0] and "no estimate" in said[1]
    trained.clear()
    assert sweep.sweep(lambda: plan, results=results, work=work, workers=1, hours=4,
                       log=said.append) == 2
    assert trained == [long.name, short.name]
    _assert_usage_error(["run", "--hours", "0"], "--hours must be a positive number")


@pytest.mark.parametrize("speed, starts_the_long_run", [(0.4, True), (1.0, False)])
def test_with_hours_the_estimates_follow_the_speed_the_sweeps_own_runs_measure(
        tmp_path, monkeypatch, speed, starts_the_long_run):
    """Estimates come from other days' records. Once a run this sweep started has timed its
    epochs, every estimate is scaled by measured over estimated: at 0.4 of its estimate a
    3-hour estimate fits in 2 hours, at 1.0 it does not."""
    results, work = tmp_path / "results", tmp_path / "work"
    short, long = protocol.Run("pooling", 0), protocol.Run("lka", 0)
    needs = {short.name: 3600, long.name: 3 * 3600}
    monkeypatch.setattr(sweep, "estimate_s", lambda run, results, work: needs[run.name])
    trained, said = [], []

    def fake_run_one(run, *, results, work, **_):
        trained.append(run.name)
        (work / run.name).mkdir(parents=True)
        # every epoch took `speed` times what the estimate said of one
        epoch_s = speed * needs[run.name] / (sweep.MARGIN * sweep._with_evaluation(run.data)
                                             * run.epochs)
        lines = [json.dumps({"epoch": e, "train_time_s": e * epoch_s})
                 for e in range(1, run.epochs + 1)]
        (work / run.name / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        return True

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    assert sweep.sweep(lambda: [long, short], results=results, work=work, workers=1, hours=2,
                       log=said.append) == (2 if starts_the_long_run else 1)
    assert trained == [short.name, long.name][:2 if starts_the_long_run else 1]
    assert said[0].startswith(f"not starting {long.name}: needs ~180 min")
    # nothing measured yet: the estimates stand
    assert sweep._measured_over_estimated({}, work) == 1.0
    # the pace is a mean over the epochs, with an epoch slowed by other work, as the records
    # the estimates come from are (epochs of 100, 400 and 100 s: 200, where a median says 100)
    slowed = work / "slowed"
    slowed.mkdir()
    (slowed / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "train_time_s": t}) + "\n"
        for e, t in enumerate((100.0, 500.0, 600.0), start=1)))
    assert sweep._epoch_s_so_far(slowed) == pytest.approx(200.0)
    # a resumed run: only the epochs after the ones it had done when it started count
    assert sweep._epoch_s_so_far(slowed, after=1) == pytest.approx(250.0)
    assert sweep._epoch_s_so_far(slowed, after=3) is None
    # a line still being written, or one that does not parse, ends the reading
    text = (slowed / "metrics.jsonl").read_text()
    for tail in ('{"epoch": 4, "train_ti', 'not json\n', '{"epoch": 4}\n'):
        (slowed / "metrics.jsonl").write_text(text + tail + '{"train_time_s": 9000}\n')
        assert sweep._epoch_s_so_far(slowed) == pytest.approx(200.0), tail
    # a run with no epoch yet does not count, nor one with none since it started
    measured = sweep._epoch_s_so_far(work / short.name)
    half = {short.name: (2 * measured, 0), "not-begun": (1.0, 0), slowed.name: (1.0, 3)}
    assert sweep._measured_over_estimated(half, work) == pytest.approx(0.5)


@pytest.mark.parametrize("epoch_before_the_wait", [False, True])
def test_with_hours_an_idle_worker_waits_for_the_first_epoch_and_asks_again(
        tmp_path, monkeypatch, epoch_before_the_wait):
    """A fresh sweep has only other days' records: the second worker, finding nothing that fits
    by them, waits until the first run has timed an epoch and then starts the long run beside
    it, rather than leaving its core idle for the whole first run; also when that epoch ends
    between its refusal and its wait."""
    import threading
    results, work = tmp_path / "results", tmp_path / "work"
    short, long = protocol.Run("pooling", 0), protocol.Run("lka", 0)
    needs = {short.name: 3600, long.name: 3 * 3600}
    monkeypatch.setattr(sweep, "estimate_s", lambda run, results, work: needs[run.name])
    monkeypatch.setattr(sweep, "POLL_S", 0.01)
    long_started, refused, timed, overlapped = (threading.Event(), threading.Event(),
                                                threading.Event(), [])

    def fake_run_one(run, *, results, work, **_):
        if run == long:
            long_started.set()
            return True
        assert refused.wait(timeout=5)  # the other worker has found nothing that fits
        (work / run.name).mkdir(parents=True)
        epoch_s = 0.4 * needs[run.name] / (sweep.MARGIN * sweep._with_evaluation(run.data)
                                           * run.epochs)  # its first epoch, at 0.4 of the estimate
        (work / run.name / "metrics.jsonl").write_text(
            json.dumps({"epoch": 1, "train_time_s": epoch_s}) + "\n")
        timed.set()
        overlapped.append(long_started.wait(timeout=5))  # still training when long starts?
        return True

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    def log(message):
        if message.startswith(f"not starting {long.name}"):
            refused.set()
            if epoch_before_the_wait:  # the refusing worker goes on only after the epoch
                assert timed.wait(timeout=5)

    assert sweep.sweep(lambda: [short, long], results=results, work=work, workers=2, hours=2,
                       log=log) == 2
    assert overlapped == [True]


def test_a_stop_signal_ends_a_workers_wait_for_the_first_epoch_at_once(tmp_path, monkeypatch):
    import threading
    results, work = tmp_path / "results", tmp_path / "work"
    short, long = protocol.Run("pooling", 0), protocol.Run("lka", 0)
    needs = {short.name: 3600, long.name: 3 * 3600}
    monkeypatch.setattr(sweep, "estimate_s", lambda run, results, work: needs[run.name])
    monkeypatch.setattr(sweep, "POLL_S", 60.0)  # a wait that only the stop can cut short
    refused, waiting = threading.Event(), threading.Event()
    epoch_s_so_far = sweep._epoch_s_so_far

    def looking(folder, **kwargs):  # after the refusal, the refusing worker looks for an epoch
        if refused.is_set():
            waiting.set()
        return epoch_s_so_far(folder, **kwargs)

    def fake_run_one(run, *, results, work, running, **_):
        assert waiting.wait(timeout=5)
        time.sleep(0.2)  # the other worker is now in its wait for this run's first epoch
        running.stop(signal.SIGTERM)
        return False

    monkeypatch.setattr(sweep, "_epoch_s_so_far", looking)

    def log(message):
        if message.startswith(f"not starting {long.name}"):
            refused.set()

    monkeypatch.setattr(sweep, "run_one", fake_run_one)
    waits = []  # (timeout, whether the event woke it) of every wait on the stop event

    class Recorded(threading.Event):
        def wait(self, timeout=None):
            woke = super().wait(timeout)
            waits.append((timeout, woke))
            return woke

    class Running(sweep._Running):
        def __init__(self):
            super().__init__()
            self.stopped = Recorded()

    monkeypatch.setattr(sweep, "_Running", Running)
    assert sweep.sweep(lambda: [short, long], results=results, work=work, workers=2, hours=2,
                       log=log) == 0
    # the worker waited on the 60 s poll, and the stop, not the poll's end, woke it
    assert (sweep.POLL_S, True) in waits and all(woke for _, woke in waits), waits


def _assert_usage_error(argv, message):
    """argparse's usage error (exit status 2) with the sweep's own message: an unknown option
    would exit the same way, with another message."""
    with pytest.raises(SystemExit) as stop, contextlib.redirect_stderr(io.StringIO()) as err:
        sweep.main(argv)
    assert stop.value.code == 2 and message in err.getvalue(), err.getvalue()

def test_every_claim_compares_runs_of_the_protocol_with_a_cited_paper():
    bib = (ROOT / "book" / "references.bib").read_text()
    for claim in protocol.CLAIMS:
        assert f"{{{claim.paper}," in bib, claim.key
        epochs = protocol.EPOCHS if claim.data == "cifar10" else protocol.IMAGENETTE_EPOCHS
        for preset in claim.presets:
            assert len(protocol.runs_of(preset, epochs=epochs, data=claim.data)) == len(protocol.SEEDS), \
                (claim.key, preset)


@pytest.mark.parametrize("kind, b, said", [
    ("beter", "dwconv", "kind must be one of"),  # a typo, which verdict() would meet much later
    ("better", ("dwconv", "lka"), "b must be a tuple of rivals exactly when kind is 'best'"),
    ("best", "dwconv", "b must be a tuple of rivals exactly when kind is 'best'"),
    ("best", (), "b must name at least one rival"),
])
def test_a_claim_refuses_a_kind_its_rivals_do_not_fit(kind, b, said):
    with pytest.raises(ValueError, match=said):
        protocol.Claim("k", "a claim", "han2022connection", "ddwconv", b, kind)
    with pytest.raises(ValueError, match="data must be 'cifar10' or 'imagenette', got 'cifar'"):
        protocol.Claim("k", "a claim", "p", "ddwconv", "dwconv", data="cifar")
    assert protocol.Claim("k", "a claim", "p", "ddwconv", ("dwconv", "lka"), "best").rivals == \
        ("dwconv", "lka")


def test_the_protocol_page_lists_the_runs_and_claims_the_code_runs():
    page = (ROOT / "results" / "protocol.md").read_text()
    for preset in {r.model for r in protocol.RUNS}:
        assert f"`{preset}`" in page, preset
    for claim in protocol.CLAIMS:
        assert f"`{claim.key}`" in page, claim.key
    assert re.search(rf"\bE = {protocol.EPOCHS}\b", page)


def test_select_refuses_a_name_the_protocol_does_not_list():
    assert [r.name for r in sweep.select(["dwconv_cifar-s0-e15"])] == ["dwconv_cifar-s0-e15"]
    assert {r.seed for r in sweep.select(["lka_cifar"])} == set(protocol.SEEDS)
    with pytest.raises(ValueError, match="only=.*'dwconv_cifr'"):
        sweep.select(["dwconv_cifr"])
    _assert_usage_error(["plan", "--only", "dwconv_cifr"], "'dwconv_cifr'")
    _assert_usage_error(["run", "--workers", "0"], "--workers must be at least 1, got 0")


def test_quick_runs_are_refused_where_the_protocols_runs_go(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXLIB_QUICK", "1")
    # a refusal that regresses must fail here, not train into (and commit to) a real folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep, "sweep", lambda runs, **kw: pytest.fail(f"a quick sweep ran: {kw}"))
    scratch = ["--results", str(tmp_path / "r"), "--work", str(tmp_path / "w")]
    work = ["--work", str(tmp_path / "w")]
    for argv, said in ((["run"], "name a scratch --work"),
                       (["run", *work], "--results 'results/sweep' is where the protocol's"),
                       (["run", *scratch, "--commit"], "--commit would commit them"),
                       (["run", *work, "--results", str(ROOT / "results" / "sweep-gpu")],
                        "is where the protocol's runs go"),
                       (["run", *work, "--results", str(ROOT / "results" / "sweep")],
                        "is where the protocol's runs go")):
        _assert_usage_error(argv, "MIXLIB_QUICK=1 trains on a few hundred images: ")
        _assert_usage_error(argv, said)
    monkeypatch.setattr(sweep, "sweep", lambda runs, **kw: 0)
    assert sweep.main(["run", *scratch]) == 0  # scratch folders of its own, as sweep_gpu.sh's


def test_the_weights_go_beside_the_results_and_must_be_committable(tmp_path, monkeypatch, capsys):
    """The weights' default follows --results, not the working directory (a sweep run from a
    second worktree once wrote them outside the repository it committed to); with --commit a
    weights folder outside that repository is refused before any run starts."""
    import subprocess
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    seen = {}
    monkeypatch.setattr(sweep, "sweep", lambda runs, **kw: seen.update(kw) or 0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIXLIB_QUICK", "0")
    assert sweep.main(["run", "--only", "pooling_cifar-s0-e15", "--results", str(repo / "results" / "sweep"),
                       "--work", str(tmp_path / "work"), "--commit"]) == 0
    assert seen["weights"] == repo / "results" / "weights" and seen["commit_repo"].resolve() == repo.resolve()
    with pytest.raises(SystemExit):
        sweep.main(["run", "--only", "pooling_cifar-s0-e15", "--results", str(repo / "results" / "sweep"),
                    "--work", str(tmp_path / "work"), "--weights", str(tmp_path / "elsewhere"), "--commit"])
    assert "outside the repository" in capsys.readouterr().err


def test_a_second_sweep_on_the_same_results_is_refused(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    with open(results / ".sweep.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(sweep.SweepLocked, match="another sweep"):
            sweep.sweep([protocol.RUNS[0]], results=results, work=tmp_path / "work")
    # released (as by a killed process): a sweep with nothing to do goes through
    (results / "cifar10" / protocol.RUNS[0].name).mkdir(parents=True)
    (results / "cifar10" / protocol.RUNS[0].name / "result.json").write_text("{}")
    assert sweep.sweep([protocol.RUNS[0]], results=results, work=tmp_path / "work") == 0


FAKE_TRAINING = """
import os, pathlib, signal, sys, time
trace = pathlib.Path(sys.argv[1])
pathlib.Path(sys.argv[1] + ".group").write_text(str(os.getpgid(0)))
def stop(number, frame):  # as mixlib.train: finish the step, keep a checkpoint, exit 128 + signal
    time.sleep(1)
    trace.write_text(trace.read_text() + "stopped, exited\\n")
    sys.exit(128 + number)
signal.signal(signal.SIGTERM, stop)
trace.write_text(trace.read_text() + "started\\n")
time.sleep(60)
trace.write_text(trace.read_text() + "finished\\n")
"""


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_reaches_the_runs_and_the_sweep_waits_for_them(tmp_path, monkeypatch,
                                                                     number):
    """SIGTERM to the sweep: the running training gets it (from the sweep: it runs in a
    process group of its own, so that a signal to the sweep's group does not reach it twice),
    no further run starts, the run counts as stopped (not failed), and the sweep returns, its
    lock released, only after the training has exited. A hang-up (a closed terminal) stops the
    trainings as SIGTERM does, unless hang-ups are ignored."""
    script, trace = tmp_path / "train.py", tmp_path / "trace.txt"
    script.write_text(FAKE_TRAINING)
    trace.write_text("")
    monkeypatch.setattr(sweep, "TRAIN", [sys.executable, str(script), str(trace)])
    runs = [protocol.Run("pooling", seed=0), protocol.Run("dwconv", seed=0)]

    def signal_once_started():
        for _ in range(300):
            if "started" in trace.read_text():
                os.kill(os.getpid(), number)  # to this process, where the sweep runs
                return
            time.sleep(0.1)

    messages = []
    threading.Thread(target=signal_once_started, daemon=True).start()
    before = signal.signal(number, signal.SIG_DFL)  # not ignored, as under nohup
    try:
        finished = sweep.sweep(runs, results=tmp_path / "results", work=tmp_path / "work",
                               workers=1, log=messages.append)
        assert signal.getsignal(number) is signal.SIG_DFL  # the sweep's handler is gone again
    finally:
        signal.signal(number, before)
    assert finished == 0
    assert trace.read_text() == "started\nstopped, exited\n"  # one run, stopped, waited for
    assert int(Path(f"{trace}.group").read_text()) != os.getpgid(0)
    assert any(m.startswith("stopped pooling_cifar") for m in messages), messages
    assert not any(m.startswith(("failed", "start dwconv")) for m in messages), messages
    with open(tmp_path / "results" / ".sweep.lock", "w") as lock:  # and so is its lock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_stop_before_the_trainings_handlers_is_a_stop_not_a_failure(tmp_path, monkeypatch):
    """A stop that reaches a training still importing torch ends it by the signal itself (its
    exit status -15), before anything was written: stopped, to be started again, not failed."""
    script = tmp_path / "train.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    monkeypatch.setattr(sweep, "TRAIN", [sys.executable, str(script)])
    messages = []
    assert not sweep.run_one(protocol.Run("pooling", seed=0), results=tmp_path / "results",
                             work=tmp_path / "work", threads=1, commit_repo=None,
                             log=messages.append)
    assert messages[-1].startswith("stopped pooling_cifar"), messages


FAKE_DIVERGENCE = """
import json, pathlib, sys
args = sys.argv[2:]
folder = pathlib.Path(args[args.index("--out") + 1]) / args[args.index("--name") + 1]
folder.mkdir(parents=True, exist_ok=True)
if sys.argv[1] == "diverge":  # as mixlib.train: the run as far as it got, then exit status 2
    history = [{"epoch": 1, "test_acc": 0.31}]
    (folder / "diverged.json").write_text(json.dumps({
        "model": "pooling_cifar", "seed": 0, "epochs": 15, "test_acc": None, "quick": False,
        "history": history, "diverged": {"step": 250, "epoch": 2, "reason": "a loss"}}))
sys.exit(2)
"""


@pytest.mark.parametrize("diverges", [True, False])
def test_a_run_that_diverged_is_scored_at_chance_once_and_leaves_no_weights(tmp_path, monkeypatch,
                                                                           diverges):
    """The protocol's rule for a non-finite loss: the run is done, at chance (one over the
    number of classes), its record says why, and no weights are exported (its checkpoint is
    not its end), by the sweep or by its `weights` command. An earlier attempt's diverged.json
    is no score for this one: a failure now is a failure."""
    script = tmp_path / "train.py"
    script.write_text(FAKE_DIVERGENCE)
    monkeypatch.setattr(sweep, "TRAIN", [sys.executable, str(script),
                                         "diverge" if diverges else "fail"])
    run = protocol.Run("pooling", seed=0)
    results, work, weights = tmp_path / "results", tmp_path / "work", tmp_path / "weights"
    assert sweep.keeps_weights(run)  # seed 0 at E: weights would be kept, were it not diverged
    if not diverges:  # an earlier attempt's record
        (work / run.name).mkdir(parents=True)
        (work / run.name / "diverged.json").write_text("{}")
    messages = []
    finished = sweep.sweep([run], results=results, work=work, workers=1, weights=weights,
                           log=messages.append)
    assert finished == (1 if diverges else 0)
    assert any(m.startswith("diverged" if diverges else "failed") for m in messages), messages
    assert sweep.state(run, results, work) == ("done" if diverges else "todo")
    assert not weights.exists()
    if diverges:
        result = json.loads((results / "cifar10" / run.name / "result.json").read_text())
        assert result["test_acc"] == pytest.approx(0.1)
        assert result["best_test_acc"] == pytest.approx(0.31)  # the best epoch before it
        assert result["diverged"]["step"] == 250
        assert (results / "cifar10" / run.name / "metrics.jsonl").is_file()
        assert sweep.main(["weights", "--results", str(results), "--work", str(work),
                           "--weights", str(weights), "--only", run.name]) == 0
        assert not weights.exists()


def test_a_run_that_finished_before_its_copy_is_copied_not_trained_again(tmp_path, monkeypatch):
    """A sweep that ended between a run's end and its copy (killed, a full disk) leaves a
    finished run in the work folder; mixlib.train refuses such a folder, so the next sweep
    copies it instead of failing it in every session."""
    script = tmp_path / "train.py"
    script.write_text(FAKE_DIVERGENCE)
    monkeypatch.setattr(sweep, "TRAIN", [sys.executable, str(script), "fail"])  # were it run
    monkeypatch.setenv("MIXLIB_QUICK", "0")
    run = protocol.Run("pooling", seed=1)
    results, work = tmp_path / "results", tmp_path / "work"
    (work / run.name).mkdir(parents=True)
    # a record of another run in the folder (by hand, or a quick run) is not copied
    for other in ({"seed": 2}, {"quick": True}):
        record = {"model": run.model, "dataset": "cifar10", "seed": 1, "epochs": 15,
                  "test_acc": 0.7, "quick": False, **other}
        (work / run.name / "result.json").write_text(json.dumps(record))
        messages = []
        assert sweep.sweep([run], results=results, work=work, workers=1,
                           log=messages.append) == 0
        assert any(m.startswith(f"failed {run.name}") and "another run's" in m
                   for m in messages), messages
        assert not (results / "cifar10" / run.name).exists()
    record = {"model": run.model, "dataset": "cifar10", "seed": 1, "epochs": 15, "test_acc": 0.7}
    (work / run.name / "result.json").write_text(json.dumps(record))
    (work / run.name / "metrics.jsonl").write_text("{}\n")
    messages = []
    assert sweep.sweep([run], results=results, work=work, workers=1, log=messages.append) == 1
    assert any(m.startswith(f"copying {run.name}") for m in messages), messages
    assert not any(m.startswith(("start", "failed")) for m in messages), messages
    assert json.loads((results / "cifar10" / run.name / "result.json").read_text()) == record


def test_a_sweep_trains_what_is_missing_copies_it_and_skips_it_next_time(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXLIB_QUICK", "1")  # the child trains on the quick subset
    monkeypatch.chdir(ROOT)  # python -m mixlib.train from this checkout
    run = protocol.Run("pooling", seed=0, epochs=1)
    results, work, weights = tmp_path / "results", tmp_path / "work", tmp_path / "weights"
    messages = []
    assert sweep.state(run, results, work) == "todo"
    assert sweep.sweep([run], results=results, work=work, workers=1, weights=weights,
                       log=messages.append) == 1
    folder = results / "cifar10" / run.name
    result = json.loads((folder / "result.json").read_text())
    assert (result["model"], result["seed"], result["epochs"]) == ("pooling_cifar", 0, 1)
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 1
    assert sweep.state(run, results, work) == "done"
    assert (work / run.name / "checkpoint.pt").is_file()  # checkpoints stay out of the results
    # a checkpoint waits: "stopped", unless a training holds the folder's lock ("training")
    stopped = protocol.Run("pooling", seed=1, epochs=1)
    shutil.copytree(work / run.name, work / stopped.name)
    assert sweep.state(stopped, results, work) == "stopped"
    fd = os.open(work / stopped.name, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as mixlib.train holds it
        assert sweep.state(stopped, results, work) == "training"
    finally:
        os.close(fd)
    assert sweep.state(stopped, results, work) == "stopped"
    assert not list(results.rglob("*.pt"))
    assert not list(weights.glob("*"))  # a one-epoch run is not the protocol's budget: no weights kept
    # at the protocol's budget, seed 0 keeps its weights: they load in one line and give the run's
    # accuracy back (float16 rounding aside)
    kept = protocol.Run("pooling", seed=0)
    (work / kept.name).mkdir()
    for name in ("checkpoint.pt", "result.json"):
        (work / kept.name / name).write_bytes((work / run.name / name).read_bytes())
    with pytest.raises(ValueError, match="not the run's last"):  # a stale checkpoint is refused
        result = json.loads((work / kept.name / "result.json").read_text())
        (work / kept.name / "result.json").write_text(json.dumps({**result, "steps": 7}))
        sweep.export_weights(kept, work, weights)
    (work / kept.name / "result.json").write_text(json.dumps(result))
    path = sweep.export_weights(kept, work, weights)
    assert path.stat().st_size < 5 * 2 ** 20
    record = torch.load(path, weights_only=True)
    assert record["run"] == kept.name and record["state_dict"]["head.fc.weight"].dtype == torch.float16
    assert "image_size" in record and record["image_size"] == result["config"].get("image_size")
    model = models.trained("pooling_cifar", folder=weights)
    ema = torch.load(work / run.name / "checkpoint.pt", weights_only=False)["ema"]
    assert torch.allclose(model.state_dict()["head.fc.weight"], ema["head.fc.weight"], atol=1e-3, rtol=1e-3)
    assert model.trained_from["test_acc"] == result["test_acc"] and not model.training
    with pytest.raises(FileNotFoundError, match="dwconv_cifar.*pooling_cifar"):
        models.trained("dwconv_cifar", folder=weights)
    (weights / "dwconv_cifar.pt").write_bytes(path.read_bytes()[:100])  # a truncated file
    with pytest.raises(ValueError, match=r"dwconv_cifar\.pt cannot be read"):
        models.trained("dwconv_cifar", folder=weights)
    (weights / "dwconv_cifar.pt").unlink()
    # nothing left to do: no child process is started
    monkeypatch.setattr(sweep.subprocess, "Popen", lambda *a, **k: pytest.fail("ran again"))
    assert sweep.sweep([run], results=results, work=work, log=messages.append) == 0


def test_the_gpu_sweep_script_runs_on_a_cpu_in_quick_mode(tmp_path):
    import subprocess
    env = {**os.environ, "QUICK": "1", "WORK": str(tmp_path / "work"), "PYTHON": sys.executable}

    def listing(folder):  # every file with its size and time: what a write would change
        return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))

    real = [ROOT / "results" / "sweep-gpu", ROOT / "results" / "weights-gpu"]
    before = [listing(folder) for folder in real]
    done = subprocess.run(["bash", str(ROOT / "scripts" / "sweep_gpu.sh")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = (tmp_path / "work" / "results" / "summary.txt").read_text()
    assert summary.startswith("2 runs in") and "window_attention_cifar" in summary and "pooling_cifar" in summary
    # quick mode never writes the real results, and a quick run leaves no weights
    assert [listing(folder) for folder in real] == before
    assert not (tmp_path / "work" / "weights").exists()
    # beside a run of another budget (the pilot's 2E), each budget is summarised on its own
    folder = tmp_path / "work" / "results" / "cifar10"
    twice = folder / "pooling_cifar-s0-e30"
    shutil.copytree(folder / "pooling_cifar-s0-e15", twice)
    record = json.loads((twice / "result.json").read_text())
    (twice / "result.json").write_text(json.dumps({**record, "epochs": 30}))
    again = subprocess.run(["bash", str(ROOT / "scripts" / "sweep_gpu.sh")], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    summary = (tmp_path / "work" / "results" / "summary.txt").read_text()
    assert re.search(r"pooling_cifar +e15 ", summary) and re.search(r"pooling_cifar +e30 ", summary)


def test_an_estimate_counts_only_runs_on_this_machines_cpu_when_there_are_any(tmp_path, monkeypatch):
    results, work = tmp_path / "results" / "sweep", tmp_path / "work"
    monkeypatch.setattr(sweep, "_this_cpu", lambda: "Intel")
    for seed, (seconds, cpu) in enumerate(((200, "AMD"), (300, "AMD"), (90, "Intel"))):
        _finished(results, protocol.Run("lka", seed), 15 * seconds)
        record = results / "cifar10" / protocol.Run("lka", seed).name / "result.json"
        record.write_text(json.dumps({**json.loads(record.read_text()), "hardware": {"cpu": cpu}}))
    per_epoch = sweep.MARGIN * sweep._with_evaluation("cifar10")
    assert sweep.estimate_s(protocol.Run("lka", 0, 30), results, work) == \
        pytest.approx(per_epoch * 30 * 90)  # the Intel run's 90 s, not the median 200 s
    monkeypatch.setattr(sweep, "_this_cpu", lambda: "another CPU")  # no run here: all count
    assert sweep.estimate_s(protocol.Run("lka", 0, 30), results, work) == \
        pytest.approx(per_epoch * 30 * 200)
