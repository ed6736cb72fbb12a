"""The GPU lease's two shell scripts, on the CPU: scripts/device_tree.sh keeps what travels to the
device machine under its 64 MiB and gives the checkout back unchanged; scripts/gpu_session.sh
never runs past its deadline, stops what runs there (with stand-ins for its two scripts, and
with the real ones in quick mode), and leaves what it made packed."""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mixlib import data

ROOT = Path(__file__).resolve().parent.parent
DATA = data.data_root()
needs_data = pytest.mark.skipif(
    DATA is None or not (DATA / "cifar10-jpg").is_dir() or not (DATA / "imagenette-160").is_dir(),
    reason="needs the shared CIFAR-10 and Imagenette tarballs (MIXLIB_DATA)")


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@needs_data
def test_device_tree_leaves_the_weights_behind_and_restores_the_index(tmp_path):
    repo = tmp_path / "repo"
    _git(tmp_path, "clone", "-q", "--shared", str(ROOT), str(repo))
    for name in ("scripts/device_tree.sh", ".gitignore"):  # this checkout's, maybe uncommitted
        (repo / name).write_bytes((ROOT / name).read_bytes())
    _git(repo, "add", "scripts/device_tree.sh", ".gitignore")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
         "-m", "this checkout's")
    (repo / ".whl").mkdir()
    (repo / ".whl" / "stand-in.whl").write_bytes(b"")  # no download: the wheels are there
    weights = sorted(p.relative_to(repo) for p in repo.glob("results/weights*/*.pt"))
    assert weights, "the checkout has committed weights"

    exclude = repo / ".git" / "info" / "exclude"
    excluded_before = exclude.read_text()
    script = ["bash", str(repo / "scripts" / "device_tree.sh")]
    done = subprocess.run([*script, "prepare", str(DATA)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    travels = _git(repo, "ls-files", "--cached", "--others", "--exclude-standard").split()
    assert not [p for p in travels if p.startswith("results/weights")]
    assert all((repo / p).is_file() for p in weights)  # only the index forgot them
    for archive in ("cifar10-jpg/train.tar.gz", "cifar10-jpg/SHA256SUMS",
                    "imagenette-160/val.tar.gz", "imagenette-160/SHA256SUMS"):
        assert (repo / ".data" / archive).is_file(), archive
    mib = float(done.stdout.split("what travels: ")[1].split()[0])
    counted = sum((repo / p).stat().st_size for p in travels) + sum(
        p.stat().st_size for p in (repo / ".data").rglob("*") if p.is_file())
    assert mib == pytest.approx(counted / 2 ** 20, abs=0.1) and mib < 64

    done = subprocess.run([*script, "restore"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _git(repo, "status", "--porcelain") == ""  # .data/ and .whl/ are ignored
    assert exclude.read_text() == excluded_before


def _session(tmp_path, deadline, **env):
    """scripts/gpu_session.sh in quick mode: its result and its pack folder. A session that
    ignored its deadline would outlive the stand-ins' long sleeps and hit the timeout here."""
    pack = tmp_path / "pack"
    env = {**os.environ, "QUICK": "1", "PACK": str(pack), "DEADLINE_S": str(deadline),
           "WORK": str(tmp_path / "work"), "PYTHON": sys.executable, **env}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_session.sh")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=deadline + 30)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done, pack


def _stand_in(path, text):
    path.write_text("#!/usr/bin/env bash\n" + text)
    return str(path)


def _left(pattern):  # processes whose command line holds pattern
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout.split()


def test_a_check_past_the_deadline_is_stopped_with_what_it_started(tmp_path):
    """A step's own timeouts start process groups of their own (GNU timeout does): stopping the
    step must reach them too, and the session then has no time left for a sweep."""
    check = _stand_in(tmp_path / "check.sh", "timeout 300 sleep 3017\n")
    done, pack = _session(tmp_path, 40, GPU_CHECK=check)
    assert "over 25 s: stopping" in done.stdout and "no time left for the sweep" in done.stdout
    assert not _left("sleep 3017")
    assert (pack / "results.tar").is_file()


def test_a_sweep_past_the_deadline_gets_a_stop_signal_and_leaves_nothing_running(tmp_path):
    mark = tmp_path / "stopped"
    check = _stand_in(tmp_path / "check.sh", "echo checked\n")
    sweep = _stand_in(tmp_path / "sweep.sh", f"""
trap 'echo TERM > {mark}; exit 0' TERM
# a training in a session of its own, as mixlib.sweep starts them, and a process group of its own
setsid bash -c 'exec -a "train --out $WORK" sleep 3018' &
timeout 300 sleep 3019 &
wait
""")
    done, pack = _session(tmp_path, 75, GPU_CHECK=check, SWEEP=sweep)
    assert "deadline: stopping the sweep" in done.stdout, done.stdout
    assert mark.read_text().strip() == "TERM"
    assert not _left("sleep 3018") and not _left("sleep 3019")
    assert "checked" in (pack / "gpu-check.log").read_text()


def test_the_weights_a_session_makes_come_back_in_parts_and_unpack_whole(tmp_path):
    """Weights made by the sweep (not those that came with the tree) are packed in parts of at
    most 15 MiB, which the header's unpack line puts together again."""
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "old.pt").write_bytes(b"came with the tree")
    check = _stand_in(tmp_path / "check.sh", "echo checked\n")
    sweep = _stand_in(tmp_path / "sweep.sh",
                      'head -c 20000000 /dev/urandom > "$WEIGHTS/new_cifar.pt"\n')
    done, pack = _session(tmp_path, 100, GPU_CHECK=check, SWEEP=sweep, WEIGHTS=str(weights))
    parts = sorted(pack.glob("weights.tar.part-*"))
    assert len(parts) == 2 and all(part.stat().st_size <= 15 * 2 ** 20 for part in parts)
    whole = tmp_path / "w.tar"
    whole.write_bytes(b"".join(part.read_bytes() for part in parts))
    with tarfile.open(whole) as tar:
        names = tar.getnames()
        made = tar.extractfile(names[0]).read()
    assert names == [str(weights / "new_cifar.pt").lstrip("/")]
    assert made == (weights / "new_cifar.pt").read_bytes()


@needs_data
def test_gpu_session_runs_the_real_scripts_in_quick_mode(tmp_path):
    # Quick mode's steps and sweep end by themselves in about two minutes on a quiet 2-core
    # machine; beside other work they took longer than a 150 s deadline allows, and a step
    # stopped at the deadline is missing below. The stand-ins above test the stopping.
    deadline = 420
    done, pack = _session(tmp_path, deadline)
    assert "packed" in done.stdout.splitlines()[-1]
    with tarfile.open(pack / "results.tar") as tar:
        names = tar.getnames()
    checks = (pack / "gpu-check.log").read_text()
    assert all(f"== {step} " in checks for step in ("bench_aggregate", "bench_host_reads",
                                                   "pytest_triton", "notebook_ch1"))
    # the sweep ran, until it ended or was stopped: its runs' logs came along, under gpu-logs/
    assert "sweep starts" in done.stdout and "sweep ended" in done.stdout
    assert any(n.startswith("gpu-logs/") and n.endswith(".log") for n in names), names
    # and each run's per-epoch metrics, finished or not; not the sweep's lock and summary
    assert any(n.startswith("gpu-logs/") and n.endswith("/metrics.jsonl") for n in names), names
    assert not any(n.endswith((".sweep.lock", "summary.txt")) for n in names), names
    # only what the session wrote: none of the committed bench files it did not rewrite
    assert not any(n.startswith("results/bench/") for n in names), names
    assert not _left(str(tmp_path / "work"))  # every process of the sweep ended
