"""The GPU lease's two shell scripts, on the CPU: scripts/device_tree.sh keeps what travels to the
device machine under its 64 MiB and gives the checkout back unchanged; scripts/gpu_session.sh
never runs past its deadline, stops its sweep there, and leaves what it made packed."""
import os
import subprocess
import sys
import tarfile
import time
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


def test_gpu_session_stops_its_sweep_at_the_deadline_and_packs(tmp_path):
    pack, deadline = tmp_path / "pack", 150
    env = {**os.environ, "QUICK": "1", "PACK": str(pack), "DEADLINE_S": str(deadline),
           "WORK": str(tmp_path / "work"), "PYTHON": sys.executable}
    started = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_session.sh")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=deadline + 120)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert elapsed < deadline + 30, (elapsed, done.stdout)  # the packing's seconds at most
    assert "packed" in done.stdout.splitlines()[-1]
    with tarfile.open(pack / "results.tar") as tar:
        names = tar.getnames()
    assert any(n.startswith("results/bench/") for n in names)
    # the sweep ran until it was stopped: its runs' logs came along, under gpu-logs/
    assert "sweep starts" in done.stdout and "sweep ended" in done.stdout
    assert any(n.startswith("gpu-logs/") and n.endswith(".log") for n in names), names
    # a stop reached every process of the sweep: none is left
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "work")], capture_output=True)
    assert left.returncode == 1, left.stdout
