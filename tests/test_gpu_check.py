"""scripts/gpu_check.sh in quick mode on the CPU: every step runs and succeeds, and each
writes the JSON it promises (the same script, on a GPU, writes results/bench/*-cuda.json)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_quick_mode_runs_every_step(tmp_path):
    env = {**os.environ, "QUICK": "1", "OUT_DIR": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    device = re.search(r"\((cpu|cuda), quick=", done.stdout).group(1)  # "== step (device, ...)"
    summary = json.loads((tmp_path / f"gpu-check-quick-{device}.json").read_text())
    assert summary["quick"] and summary["device"] == device
    assert summary["environment"]["device"] == device and summary["commit"]
    assert set(summary["steps"]) == {"pytest_triton", "pytest_train_cuda", "bench_aggregate",
                                     "bench_neighborhood", "bench_host_reads", "notebook_ch1"}
    assert all(s["exit_status"] == 0 for s in summary["steps"].values())
    for name in ("aggregate", "neighborhood", "host-reads"):
        record = json.loads((tmp_path / f"{name}-quick-{device}.json").read_text())
        assert record["rows"] and record["environment"]["device"] == device
    # chapter 1, executed on this device: every code cell ran, none left an error
    notebook = json.loads((tmp_path / f"01_one_formula-quick-{device}.ipynb").read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] for c in code)
    assert not any(o["output_type"] == "error" for c in code for o in c["outputs"])
    printed = "".join("".join(o.get("text", "")) for c in code for o in c["outputs"])  # lines
    assert f"device: {device}" in printed


def test_gpu_check_reports_failed_steps(tmp_path):
    """A failing step makes the exit status 1 and is recorded, and the steps after it still run."""
    env = {**os.environ, "QUICK": "1", "OUT_DIR": str(tmp_path),
           "PYTHON": str(tmp_path / "python")}
    # a python whose every `-m` step fails at once; its other uses (the device probe, the
    # summary) pass through
    (tmp_path / "python").write_text(
        f'#!/bin/sh\nif [ "$1" = -m ]; then exit 3; fi\nexec {sys.executable} "$@"\n')
    (tmp_path / "python").chmod(0o755)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    summary = json.loads(next(tmp_path.glob("gpu-check-*.json")).read_text())
    assert [s["exit_status"] for s in summary["steps"].values()] == [3] * 6
