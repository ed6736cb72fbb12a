"""The comparison's sweep: the protocol's runs that the results folder lacks, resumable.

    python -m mixlib.sweep plan                          # every run, in order, and its state
    nice -n 19 python -m mixlib.sweep run --workers 2    # two one-thread runs side by side
    python -m mixlib.sweep run --only dwconv_cifar-s0-e15 --max-runs 1
    python -m mixlib.sweep weights                       # trained weights of finished runs

Each run is ``python -m mixlib.train`` in a child process (``OMP_NUM_THREADS`` = --threads),
training into a work folder (``--work``, default ``$MIXLIB_CACHE/sweep``, outside the
repository, so its checkpoints survive a fresh checkout of the same machine). A finished run's
``result.json`` and ``metrics.jsonl`` are copied into ``--results``/<data>/<run>/ (default
``results/sweep``), each file atomically; that folder is what the book reads and what git keeps.
A run whose copy is there is skipped, a stopped one resumes from its checkpoint, and a second
sweep on the same results folder is refused (an OS lock that a killed sweep releases).
SIGTERM or SIGINT (Ctrl-C) to the sweep reaches its runs, which stop at the end of their step
with a checkpoint; the sweep starts nothing more and holds its lock until they have exited, so
a sweep started meanwhile is refused rather than finding a run's folder still in use. A
hang-up (a closed terminal) does the same unless the sweep ignores it (``nohup``); a training
that outlived a killed sweep is left to finish, and a sweep copies its result once it has. The
trainings run in sessions of their own, so pausing a sweep means pausing them, its children:
``pkill -STOP -P <sweep's pid>``, and ``pkill -CONT -P <sweep's pid>`` to go on.
With ``--commit``, each finished run is committed on its own (only its files). With
``MIXLIB_QUICK=1`` (a few hundred images) ``run`` needs a scratch ``--results`` and ``--work``
of its own and no ``--commit``: quick runs never stand for the protocol's.

A run whose loss, gradients or weights became non-finite is not trained again: the protocol
scores it at chance, the accuracy of a guess (one over the number of classes), and its
``result.json`` says so under ``diverged`` (`score_diverged`); it leaves no weights.

A machine that does not outlive the session loses a run in progress with its checkpoint, so
``--hours H`` starts only runs that should end within H hours of the sweep's start: a run's
time is estimated from the presets' one-thread benchmark (the Imagenette presets' at 128 px)
scaled by how the finished runs compared with it, else (a preset not benchmarked) from the
recorded training time per epoch of its preset's finished runs, with the evaluation after
each epoch and a margin (`estimate_s`). Records from other days say little about how fast the
machine is today, so once the sweep's own runs have finished an epoch, every estimate is
scaled by how long their epochs took against what their estimates said
(`_measured_over_estimated`). A run with no estimate, or one that would end too late, is left
for a later sweep, and a shorter one after it may start instead.

Seed 0 of each preset at the protocol's budget also leaves its final weights (the moving average
the run reports) in ``--weights``/<model>.pt (default ``weights/`` beside the results folder,
so ``results/weights`` for ``results/sweep`` from any working directory), in float16 (under 5 MB
for the ~2 M-parameter presets), loadable with ``torch.load(weights_only=True)`` and by
``mixlib.models.trained(name)``.
"""
from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median

import torch

from . import protocol
from .data import DATASETS, quick_mode
from .files import atomic_write, save_torch
from .paths import cache_root, results_folder
from .provenance import environment
from .results import load_run, load_runs, pilot

__all__ = ["state", "pending", "estimate_s", "run_one", "sweep", "export_weights",
           "score_diverged", "main", "SweepLocked"]

RESULT_FILES = ("result.json", "metrics.jsonl")
TRAIN = [sys.executable, "-m", "mixlib.train"]  # a run's command, before its arguments
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# the presets' training speed, one thread each, every step timed in turns (`mixlib.bench models
# --turns`, the Imagenette presets at the protocol's 128 px), beside the results folder, and the
# training images of an epoch: what estimate_s scales, by the finished runs' ratio to it
BENCH = {"cifar10": Path("bench") / "models-small-cpu-1thread-turns.json",
         "imagenette": Path("bench") / "models-imagenette128-cpu-1thread-turns.json"}
TRAIN_IMAGES = {name: spec.sizes["train"] for name, spec in DATASETS.items()}
TEST_IMAGES = {name: spec.sizes["test"] for name, spec in DATASETS.items()}
MARGIN = 1.1  # estimate_s's factor for start-up and a slower hour of the machine
POLL_S = 10.0  # how often an idle worker looks for the first epoch of the sweep's runs


class SweepLocked(RuntimeError):
    """Another sweep holds the results folder."""


def _default_work() -> Path:
    return cache_root() / "sweep"


def _done(run: protocol.Run, results: Path) -> bool:
    return (results / run.data / run.name / "result.json").is_file()


def _in_use(folder: Path) -> bool:
    """Whether a training holds `folder`'s lock (`mixlib.train` flocks its run folder while it
    trains, so a sweep's run under way is told from one that stopped)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # no folder (or no access): nothing trains there that we could see
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it the shared lock, if it was taken


def state(run: protocol.Run, results: Path, work: Path) -> str:
    """"done" (its result is in `results`), "training" (a process holds its folder in `work`),
    "stopped" (a checkpoint waits in `work`) or "todo"."""
    if _done(run, results):
        return "done"
    if _in_use(work / run.name):
        return "training"
    if (work / run.name / "checkpoint.pt").is_file():
        return "stopped"
    return "todo"


def _epochs_left(run: protocol.Run, work: Path) -> int:
    """The epochs `run` still has: a stopped run's metrics.jsonl has one line per epoch done."""
    metrics = work / run.name / "metrics.jsonl"
    # a line cut short by a kill has no newline yet: no epoch
    done = metrics.read_text().count("\n") if metrics.is_file() else 0
    return max(run.epochs - done, 0)


def _with_evaluation(data: str) -> float:
    """Wall time over recorded training time: each epoch ends with the test set evaluated
    twice (flip test-time augmentation), forward only, about a third of a training step per
    image (CIFAR-10: 1.13, what this machine's runs took; Imagenette: 1.28)."""
    return 1 + 2 * TEST_IMAGES[data] / (3 * TRAIN_IMAGES[data])


@functools.cache  # asked once per pending run by estimate_s; the machine does not change
def _this_cpu() -> str | None:
    """This machine's CPU as a run's ``hardware["cpu"]`` names it."""
    return environment(torch.device("cpu")).get("cpu")


def _epoch_s_so_far(folder: Path, *, after: int = 0) -> float | None:
    """Training seconds per epoch of the run whose work folder is `folder`, over the epochs its
    metrics.jsonl records after epoch `after` (a resumed run's earlier epochs ran on another
    day), None before one has. A mean, with whatever shared the machine meanwhile: the records
    the estimates come from are such means too, so the two compare like with like. A line still
    being written, or one that does not parse, ends the reading: the run rewrites its metrics
    when it resumes."""
    metrics = folder / "metrics.jsonl"
    cumulative = [0.0]  # train_time_s is cumulative: an epoch's own is a difference
    for line in (metrics.read_text() if metrics.is_file() else "").splitlines(keepends=True):
        try:
            cumulative.append(float(json.loads(line)["train_time_s"]) if line.endswith("\n")
                              else None)
        except (ValueError, KeyError, TypeError):
            cumulative.append(None)
        if cumulative[-1] is None:
            cumulative.pop()
            break
    done = len(cumulative) - 1
    return (cumulative[-1] - cumulative[after]) / (done - after) if done > after else None


def _measured_over_estimated(expected: dict[str, tuple[float, int]], work: Path) -> float:
    """How fast this machine is today against the estimates: the median, over the runs this
    sweep started that have finished an epoch since, of their measured seconds per epoch over
    what their estimate said (`expected`: run name -> (seconds per epoch, epochs done when it
    started)); 1 before any has."""
    ratios = []
    for name, (seconds, done) in expected.items():  # the caller holds the lock it grows under
        measured = _epoch_s_so_far(work / name, after=done)
        if measured is not None and measured > 0 and seconds > 0:
            ratios.append(measured / seconds)
    return median(ratios) if ratios else 1.0


def _overhead(run: protocol.Run, work: Path) -> float:
    """`run`'s estimate over one epoch's training time: its epochs left, each with its
    evaluation (`_with_evaluation`), times MARGIN."""
    return MARGIN * _with_evaluation(run.data) * _epochs_left(run, work)


def estimate_s(run: protocol.Run, results: Path, work: Path) -> float | None:
    """Seconds `run` should take to finish on this machine, or None if nothing tells.

    The presets' one-thread benchmark (`BENCH` beside `results`, images per second, measured in
    turns at one commit, so the presets' speeds compare like with like; Imagenette's at 128 px)
    times an epoch of its preset, scaled by the median ratio of the finished runs' epoch times to
    what the benchmark says of their presets (the runs on the same data where there are any: an
    Imagenette epoch at 128 px compares with its benchmark otherwise than a CIFAR-10 one). A
    preset the benchmark lacks is timed by the median of its own finished runs. Not the other
    way round: a preset's own runs time the code they ran, and a preset whose runs all predate
    a speed-up (neighbourhood attention's tiles, the depthwise backward) would keep an estimate
    two or three times too long, out of every session; the median over all presets is not
    moved by a few such runs. Times the epochs it has left (a stopped run resumes), the
    evaluation after each and `MARGIN` (`_overhead`). A diverged run's time is not that of its
    epochs and is not read. The finished runs shared the machine as the sweep's runs do (two
    side by side), so the estimate holds for a sweep run the same way. Where some finished runs
    ran on this machine's kind of CPU (their ``hardware["cpu"]``), only those count: runs on
    another CPU ran at other speeds. A run finished (or scored) in `work` needs only its copy:
    0 seconds.
    """
    if (work / run.name / "result.json").is_file():
        return 0.0
    records = load_runs(results) if results.is_dir() else []
    # a diverged run stopped before its last epoch: its time is not that of its epochs
    records = [r for r in records if "diverged" not in r]
    here = [r for r in records if r.get("hardware", {}).get("cpu") == _this_cpu()]
    bench_epoch_s = {}  # model -> seconds of one epoch at its benchmark's speed
    for data, path in BENCH.items():
        if (results.parent / path).is_file():
            rows = json.loads((results.parent / path).read_text())["rows"]
            bench_epoch_s.update({row["model"]: TRAIN_IMAGES[data] / row["train_img_s_turns"]
                                  for row in rows if "train_img_s_turns" in row})
    epoch_s: dict[str, list[float]] = {}  # model -> per-epoch training seconds of its runs
    ratios: dict[str, list[float]] = {}  # data -> each run's epoch over its benchmark's
    for record in here or records:
        seconds = record["train_time_s"] / record["epochs"]
        epoch_s.setdefault(record["model"], []).append(seconds)
        if record["model"] in bench_epoch_s:
            ratios.setdefault(record.get("dataset"), []).append(
                seconds / bench_epoch_s[record["model"]])
    factor = _overhead(run, work)
    same_data = ratios.get(run.data) or [r for rs in ratios.values() for r in rs]
    if run.model in bench_epoch_s and same_data:
        return factor * median(same_data) * bench_epoch_s[run.model]
    if run.model in epoch_s:  # a model's name says its data
        return factor * median(epoch_s[run.model])
    return None


def decided_epochs(results: Path) -> int:
    """E as the pilot's finished runs in `results` decide it (`results.pilot`, as chapter 8
    reads it); the protocol's E while one of them is missing."""
    finished = [load_run(results / run.data / run.name)
                for run in protocol.PILOT_RUNS if _done(run, results)]
    return pilot(finished)["epochs"] or protocol.EPOCHS


def select(only: list[str] | None, *, results: Path | None = None) -> list[protocol.Run]:
    """The protocol's runs at the E the pilot in `results` decided (E while it is unfinished or
    `results` is None), or those of them named in `only` (run names, or model names for all
    their runs). A name the protocol lists at neither budget is an error, not an empty sweep; a
    run at the budget the pilot did not choose is quietly not planned."""
    epochs = decided_epochs(results) if results is not None else protocol.EPOCHS
    planned = protocol.runs(cifar_epochs=epochs)
    if not only:
        return list(planned)
    # the budget the pilot did not choose
    other = protocol.EPOCHS if epochs == 2 * protocol.EPOCHS else 2 * protocol.EPOCHS
    either = planned + protocol.runs(cifar_epochs=other)
    known = {r.name for r in either} | {r.model for r in either}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"only={only!r} names {unknown!r}, which the protocol lists as no run "
                         f"or preset (`python -m mixlib.sweep plan` lists them)")
    return [r for r in planned if r.name in only or r.model in only]


def pending(runs: list[protocol.Run], results: Path) -> list[protocol.Run]:
    return [r for r in runs if not _done(r, results)]


def keeps_weights(run: protocol.Run, *, cifar_epochs: int = protocol.EPOCHS) -> bool:
    """Whether `run` is the one whose weights the book keeps: seed 0 at the protocol's budget
    (`cifar_epochs` on CIFAR-10, as the pilot decided)."""
    epochs = cifar_epochs if run.data == "cifar10" else protocol.IMAGENETTE_EPOCHS
    return run.seed == 0 and run.epochs == epochs


def export_weights(run: protocol.Run, work: Path, folder: Path) -> Path:
    """The final weights of finished `run` (its moving average, what it reports) from its last
    checkpoint in `work` into `folder`/<model>.pt: float16 tensors and the run's identity,
    loadable with ``torch.load(weights_only=True)``."""
    result = json.loads((work / run.name / "result.json").read_text())
    checkpoint = torch.load(work / run.name / "checkpoint.pt", map_location="cpu",
                            weights_only=False)
    if checkpoint["step"] != result["steps"]:
        raise ValueError(f"{work / run.name / 'checkpoint.pt'} is at step {checkpoint['step']}, "
                         f"not the run's last ({result['steps']}, its result.json)")
    weights = checkpoint["ema"] if checkpoint["ema"] is not None else checkpoint["model"]
    record = {"model": run.model, "run": run.name, "test_acc": result["test_acc"],
              "commit": result["commit"],
              # the side it trained at (Imagenette's 128 px): a global filter's weights and
              # a window's shifts follow the map, so `models.trained` builds at this size
              "image_size": result.get("config", {}).get("image_size"),
              "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}}
    path = weights_path(run, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_torch(path, record)
    return path


def weights_path(run: protocol.Run, folder: Path) -> Path:
    """Where `export_weights` puts `run`'s weights in `folder`."""
    return folder / f"{run.model}.pt"


def score_diverged(run: protocol.Run, work: Path) -> bool:
    """The protocol's rule for a run that diverged (its loss, a gradient norm or its weights
    became non-finite): it is scored at chance, one over the number of classes, the accuracy
    expected of a guess (``results/protocol.md``, "Metric and tests"). If `run`'s training wrote
    ``diverged.json`` (`run_one` removes an earlier attempt's before it starts one), its record
    becomes the run's ``result.json`` with that accuracy; True if so."""
    folder = work / run.name
    record_path = folder / "diverged.json"
    if not record_path.is_file():
        return False
    record = json.loads(record_path.read_text())
    (folder / "metrics.jsonl").touch()  # a run that diverged in its first epoch has no line
    chance = 1 / len(DATASETS[run.data].classes)
    record.update(test_acc=chance, best_test_acc=max(
        [chance] + [h["test_acc"] for h in record["history"]]))
    atomic_write(folder / "result.json", lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return True


def _has_final_weights(run: protocol.Run, work: Path) -> bool:
    """Whether `run` finished in `work` with weights that are the book's: not on MIXLIB_QUICK's
    subset (a test), and not diverged (its last checkpoint is not its end)."""
    path = work / run.name / "result.json"
    if not path.is_file():
        return False
    record = json.loads(path.read_text())
    return not record.get("quick", False) and "diverged" not in record


def _copy_result(run: protocol.Run, work: Path, results: Path, weights: Path | None = None,
                 log=print) -> list[Path]:
    folder = results / run.data / run.name
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in ("metrics.jsonl", "result.json"):  # result.json last: its presence means done
        source = work / run.name / name
        atomic_write(folder / name, lambda tmp, source=source: shutil.copyfile(source, tmp))
        copied.append(folder / name)
    if weights is None:
        return copied
    # the weights are kept once E is known with this run counted: the pilot's last run may
    # decide that its two runs at 2E, not those at E, hold the book's weights
    epochs = decided_epochs(results)
    flipped = run in protocol.PILOT_RUNS and epochs == 2 * protocol.EPOCHS
    for kept in protocol.PILOT_RUNS if flipped else (run,):
        if not (_done(kept, results) and keeps_weights(kept, cifar_epochs=epochs)):
            continue
        if _has_final_weights(kept, work):
            copied.append(export_weights(kept, work, weights))
        elif kept != run and "diverged" not in load_run(results / kept.data / kept.name):
            # the other pilot run at 2E finished in another work folder (a GPU session's):
            # the weights file still holds its run at E
            log(f"{weights_path(kept, weights)} does not hold {kept.name}'s weights (E is now "
                f"{epochs}): its checkpoint is not in {work / kept.name}; export them where it "
                f"is (python -m mixlib.sweep weights) or remove the file")
    return copied


def _commit(paths: list[Path], message: str, repo: Path, log) -> None:
    """Commit just these files; other staged or edited files stay as they are. A busy
    repository (another git process holds its lock) is tried again; any other refusal is
    logged at once, in git's words."""
    # absolute: `git -C repo` reads a relative path from the repository's top, not from here
    names = [str(Path(p).resolve()) for p in paths]
    for attempt in range(20):
        for command in (["add", "--"], ["commit", "-q", "-m", message, "--"]):
            done = subprocess.run(["git", "-C", str(repo), *command, *names],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                break
        else:
            return
        if ".lock" not in done.stderr:  # an ignored file, a path outside: waiting cannot help
            break
        time.sleep(3 + attempt)  # another git process (a person, an editor) holds the index
    said = (done.stderr or done.stdout).strip().splitlines()
    log(f"could not commit {names} (git {command[0]}: {said[0] if said else done.returncode}); "
        f"commit them by hand")


def _say_uncommitted(repo: Path, folders: list[Path], log) -> None:
    """Name the files in `folders` that git does not have as committed: a sweep that ended
    between a run's copy and its commit left them, and the copied run counts as done, so no
    later sweep would commit them."""
    # -z: paths unquoted whatever they hold; a rename's old path follows its new one
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "-z",
                             "--untracked-files=all", "--", *(str(f.resolve()) for f in folders)],
                            capture_output=True, text=True)
    if status.returncode != 0:
        said = status.stderr.strip().splitlines()
        log(f"could not list what {[str(f) for f in folders]} hold uncommitted (git status: "
            f"{said[0] if said else status.returncode})")
        return
    entries, left = iter(status.stdout.split("\0")), []
    for entry in entries:
        if {"R", "C"} & set(entry[:2]):
            next(entries, None)
        # only what _copy_result writes: a README a person edits is not a run's
        if Path(entry[3:]).name in ("result.json", "metrics.jsonl") or entry.endswith(".pt"):
            left.append(entry[3:])
    if left:
        log(f"{len(left)} file(s) of finished runs are not committed (a sweep ended before its "
            f"commit?): {', '.join(left[:4])}{', ...' if len(left) > 4 else ''}; commit them "
            f"by hand")


def run_one(run: protocol.Run, *, results: Path, work: Path, threads: int, commit_repo: Path | None,
            weights: Path | None = None, log=print, running: "_Running | None" = None) -> bool:
    """Train `run` (resuming it if it was stopped) and copy its result; True if it finished
    (a run that diverged finishes so, scored at chance: `score_diverged`).
    `running`: the sweep's record of its training processes, which a stop signal reaches."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [*TRAIN, *run.train_args(), "--out", str(work), "--name", run.name, "--resume"]
    started = time.time()
    finished = work / run.name / "result.json"
    if finished.is_file():
        # finished (or scored) by an earlier sweep that ended before its copy: mixlib.train
        # would refuse the folder, so the copy is all that is left to do, if it is this run's
        record = json.loads(finished.read_text())
        identity = tuple(record.get(k) for k in ("model", "dataset", "seed", "epochs"))
        if identity != (run.model, run.data, run.seed, run.epochs) \
                or record.get("quick", False) != quick_mode():
            log(f"failed {run.name}: {finished} is another run's record ({identity}, quick "
                f"{record.get('quick', False)}); move it away")
            return False
        log(f"copying {run.name}, which finished earlier")
        code = 0
    else:
        log(f"start {run.name} ({state(run, results, work)})")
        # an earlier attempt's record: only this attempt's divergence is scored
        (work / run.name / "diverged.json").unlink(missing_ok=True)
        running = running or _Running()
        with open(work / f"{run.name}.log", "a") as out:
            # a session of its own: a signal to the sweep's process group reaches the training
            # once, passed on by the sweep; twice would stop it at once, without its checkpoint
            code = running.wait(subprocess.Popen(command, env=env, stdout=out,
                                                 stderr=subprocess.STDOUT, start_new_session=True))
    # mixlib.train's exit after a stop, or the signal itself when it came before the training
    # had set its handlers (its first seconds, before anything was written)
    if code in [128 + number for number in STOP_SIGNALS] + [-number for number in STOP_SIGNALS]:
        log(f"stopped {run.name}; it resumes (or starts afresh) next time")
        return False
    if code != 0 and score_diverged(run, work):
        log(f"diverged {run.name} (see {work / f'{run.name}.log'}): scored at chance")
    elif code != 0 or not (work / run.name / "result.json").is_file():
        log(f"failed {run.name} (exit {code}); see {work / f'{run.name}.log'}")
        return False
    copied = _copy_result(run, work, results, weights, log)
    log(f"done {run.name} in {(time.time() - started) / 60:.0f} min")
    if commit_repo is not None:
        _commit(copied, f"results: sweep run {run.name} ({run.data}, {run.epochs} epochs, "
                        f"seed {run.seed})", commit_repo, log)
    return True


class _Running:
    """A sweep's training processes, and whether it was asked to stop: a stop signal is
    passed on to each of them (they run in sessions of their own, out of reach of a signal to
    the sweep's process group), and a process that starts after it gets it at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen] = set()
        self.stop_signal: int | None = None
        self.stopped = threading.Event()  # set with stop_signal, for workers that wait

    def wait(self, process: subprocess.Popen) -> int:
        with self._lock:
            self._processes.add(process)
            if self.stop_signal is not None:
                process.send_signal(self.stop_signal)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._processes.discard(process)

    def stop(self, number: int, _frame=None) -> None:
        with self._lock:
            self.stop_signal = number
            self.stopped.set()
            for process in self._processes:
                process.send_signal(number)


def sweep(runs: list[protocol.Run] | Callable[[], list[protocol.Run]], *, results: Path,
          work: Path, workers: int = 2, threads: int = 1, max_runs: int | None = None,
          commit_repo: Path | None = None, weights: Path | None = None,
          hours: float | None = None, log=print) -> int:
    """Run the pending ones of `runs`, `workers` at a time, in the protocol's order; returns the
    number that finished. Holds an exclusive lock on `results` while it runs.

    `hours`: start only runs that `estimate_s` says end within that many hours of the sweep's
    start; once the sweep's own runs have timed an epoch, every estimate is scaled by how their
    epochs compared with their estimates (`_measured_over_estimated`). A run that does not fit
    is logged once and asked about again at the next pick (else left for a later sweep). A
    worker that leaves a run for that reason while the sweep's runs have not yet timed an epoch
    waits for that first epoch and asks once more: the records a fresh sweep starts from may be
    far from today's speed.

    `runs` may be a function that returns the plan as it stands: each worker then asks it again
    before picking its next run, so a pilot that changes E while the sweep runs changes what it
    trains next (the runs already started finish). Each run starts at most once per sweep.
    From the main thread, SIGTERM, SIGINT and a hang-up (SIGHUP, unless ignored as under
    ``nohup``) stop it: they reach the running trainings (which stop with a checkpoint), no run
    starts after them, and the lock is held until the trainings have exited. A run that raises
    is logged as failed (the traceback in its log) and the worker goes on.
    """
    plan = runs if callable(runs) else lambda: runs
    results.mkdir(parents=True, exist_ok=True)
    lock = open(results / ".sweep.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise SweepLocked(f"another sweep is running on results={str(results)!r}") from None
    if commit_repo is not None:
        _say_uncommitted(commit_repo, [results, *([weights] if weights else [])], log)
    started: set[str] = set()
    left_for_later: set[str] = set()
    held: set[str] = set()  # runs another process is training
    picking = threading.Lock()
    running = _Running()
    deadline = None if hours is None else time.time() + 3600 * hours
    # a started run's estimate of one epoch, and the epochs it had done when it started
    expected: dict[str, tuple[float, int]] = {}
    under_way: set[str] = set()  # this sweep's runs training now

    def fits(run: protocol.Run, estimate: float | None, scale: float) -> bool:
        if deadline is None:
            return True
        seconds = None if estimate is None else estimate * scale
        if seconds is not None and time.time() + seconds <= deadline:
            return True
        if run.name not in left_for_later:
            left_for_later.add(run.name)
            needs = "no estimate" if seconds is None else f"needs ~{seconds / 60:.0f} min"
            log(f"not starting {run.name}: {needs}, "
                f"{max(deadline - time.time(), 0) / 60:.0f} min left of --hours")
        return False

    def expect(run: protocol.Run, seconds: float | None) -> None:
        """Remember what `run`'s estimate says of one epoch, to compare with its epochs."""
        left = _epochs_left(run, work)
        if seconds is not None and left:
            expected[run.name] = (seconds / _overhead(run, work), run.epochs - left)

    def pick() -> tuple[protocol.Run | None, bool]:
        """The next run to start, and whether one was left because it would end too late."""
        with picking:
            if running.stop_signal is not None:
                return None, False
            if max_runs is not None and len(started) >= max_runs:
                return None, False
            scale = _measured_over_estimated(expected, work) if deadline is not None else 1.0
            too_late = False
            for run in pending(plan(), results):
                if run.name in started:
                    continue
                if _in_use(work / run.name):  # a training that outlived a killed sweep
                    if run.name not in held:
                        held.add(run.name)
                        log(f"not starting {run.name}: a training still holds "
                            f"{work / run.name} (from a sweep that was killed?); its result "
                            f"is copied once it has finished")
                    continue
                # estimate_s reads every results file: once per run and pick
                estimate = estimate_s(run, results, work) if deadline is not None else None
                if not fits(run, estimate, scale):
                    too_late = True
                    continue
                started.add(run.name)
                if deadline is not None:
                    expect(run, estimate)
                under_way.add(run.name)
                return run, too_late
            return None, too_late

    def measured() -> bool:
        with picking:  # expected grows under this lock
            return any(_epoch_s_so_far(work / name, after=done) is not None
                       for name, (_, done) in expected.items())

    def wait_for_a_measurement() -> bool:
        """Wait while this sweep's runs under way have not timed an epoch (until one has, they
        end, or a stop signal comes); True if a measurement came."""
        while under_way and not measured() and not running.stopped.wait(POLL_S):
            pass
        return measured() and running.stop_signal is None

    def next_run() -> protocol.Run | None:
        # a run left by the records alone: the estimates follow today's speed once the sweep's
        # own runs have timed an epoch, so ask once more then
        by_records = deadline is not None and not measured()
        run, too_late = pick()
        if run is None and too_late and by_records and wait_for_a_measurement():
            run, _ = pick()
        return run

    def worker(_) -> int:
        finished = 0
        while (run := next_run()) is not None:
            try:
                finished += run_one(run, results=results, work=work, threads=threads,
                                    commit_repo=commit_repo, weights=weights, log=log,
                                    running=running)
            except Exception as error:  # one run's error (a full disk) must not end this worker
                log(f"failed {run.name}: {type(error).__name__}: {error}")  # unseen until the end
                try:  # where the error came from, beside the run's training log
                    work.mkdir(parents=True, exist_ok=True)
                    with open(work / f"{run.name}.log", "a") as out:
                        out.write(traceback.format_exc())
                except OSError:  # a full disk: the line above is all there is
                    pass
            finally:
                under_way.discard(run.name)
        return finished

    handlers = {}
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        handlers = {number: signal.signal(number, running.stop) for number in STOP_SIGNALS}
        # a closed terminal would end the sweep and not its trainings (sessions of their own):
        # it stops them as SIGTERM does, with a checkpoint, unless hang-ups are ignored (nohup)
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            handlers[signal.SIGHUP] = signal.signal(
                signal.SIGHUP, lambda _number, frame: running.stop(signal.SIGTERM, frame))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(worker, range(workers)))
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixlib.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["plan", "run", "weights"])
    parser.add_argument("--results", type=Path, default=Path("results/sweep"))
    parser.add_argument("--weights", type=Path, default=None,
                        help="where seed 0's trained weights go (default: weights/ beside --results)")
    parser.add_argument("--work", type=Path, default=None, help="checkpoints (default "
                        "$MIXLIB_CACHE/sweep)")
    parser.add_argument("--only", nargs="+", default=None, help="run or model names")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads of each run")
    parser.add_argument("--max-runs", type=int, default=None)
    parser.add_argument("--hours", type=float, default=None,
                        help="start only runs estimated to end within this many hours")
    parser.add_argument("--commit", action="store_true", help="commit each finished run")
    args = parser.parse_args(argv)
    for name in ("workers", "threads", "max_runs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.hours is not None and not args.hours > 0:
        parser.error(f"--hours must be a positive number of hours, got {args.hours}")
    # quick runs (a few hundred images) recorded where the protocol's go would stand for them
    # (every column under results/, the GPU's too), and their checkpoints in the shared work
    # folder would stop the real runs' resumes
    if args.command == "run" and quick_mode():
        try:  # the book's results: beside this checkout, or $MIXLIB_RESULTS
            columns = results_folder(fetch=False).resolve()
        except FileNotFoundError:  # a pip-installed mixlib with no results fetched
            columns = None
        quick = "MIXLIB_QUICK=1 trains on a few hundred images"
        if args.commit:
            parser.error(f"{quick}: --commit would commit them; unset one of the two")
        if args.work is None:
            parser.error(f"{quick}: name a scratch --work (the default, "
                         f"{str(_default_work())!r}, holds the protocol's checkpoints)")
        if args.results == parser.get_default("results") or \
                (columns is not None and args.results.resolve().is_relative_to(columns)):
            parser.error(f"{quick}: --results {str(args.results)!r} is where the protocol's "
                         f"runs go ({columns}); name a scratch folder")
    work = args.work or _default_work()
    args.weights = args.weights or args.results.parent / "weights"
    try:
        runs = select(args.only, results=args.results)
    except ValueError as error:
        parser.error(str(error))
    if args.command == "plan":
        for run in runs:
            seconds = None if _done(run, args.results) else estimate_s(run, args.results, work)
            needs = "" if seconds is None else f" ~{seconds / 60:.0f} min"
            print(f"{state(run, args.results, work):8s} {run.data:10s} {run.name}{needs}")
        return 0
    if args.command == "weights":  # runs finished before their weights were kept
        epochs = decided_epochs(args.results)
        for run in runs:
            if keeps_weights(run, cifar_epochs=epochs) and _has_final_weights(run, work):
                print(export_weights(run, work, args.weights))
        return 0
    repo = None
    if args.commit:  # the repository that holds the results folder
        args.results.mkdir(parents=True, exist_ok=True)
        top = subprocess.run(["git", "-C", str(args.results), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True)
        if top.returncode != 0:
            parser.error(f"--commit: results={str(args.results)!r} is not inside a git repository")
        repo = Path(top.stdout.strip())
        # a weights folder outside that repository could never be committed with its run
        if not args.weights.resolve().is_relative_to(repo.resolve()):
            parser.error(f"--commit: weights={str(args.weights)!r} is outside the repository "
                         f"{str(repo)!r} that holds the results; name a folder inside it")
    try:
        done = sweep(lambda: select(args.only, results=args.results), results=args.results,
                     work=work, workers=args.workers, threads=args.threads, max_runs=args.max_runs,
                     commit_repo=repo, weights=args.weights, hours=args.hours,
                     log=lambda message: print(f"{time.strftime('%H:%M:%S')} {message}", flush=True))
    except SweepLocked as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    still = pending(select(args.only, results=args.results), args.results)
    print(f"{done} run(s) finished; {len(still)} still pending")
    return 0


if __name__ == "__main__":
    sys.exit(main())
