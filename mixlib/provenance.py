"""Provenance: what a number was measured on and with which code.

    from mixlib.provenance import environment, code_commit, machine_name
    environment(torch.device("cpu"))   # {"torch": ..., "python": ..., "cpu": ..., "cores": ...}
    machine_name(environment(device))  # "AMD EPYC ...": the GPU's model, else the CPU's
    code_commit()                      # "4f1c...", "4f1c...-dirty" or "unknown"

Every results file of the book (training runs, benchmarks) records both, so that a number can
be traced to the hardware, the library versions and the commit that produced it.
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

__all__ = ["code_commit", "environment", "machine_name"]


def code_commit() -> str:
    """The git commit of the checkout mixlib runs from, "-dirty" if mixlib/ has edits, or
    "unknown" outside a checkout: the results files record it."""
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "mixlib"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device) -> dict:
    """What the numbers were measured on: versions, machine, threads and the device."""
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    else:
        try:
            with open("/proc/cpuinfo") as f:
                names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
            env["cpu"] = names[0] if names else platform.processor()
            env["cores"] = os.cpu_count()
        except OSError:
            pass
    return env


def machine_name(hardware: dict) -> str:
    """The processor a record's `hardware` (an `environment`) names: the GPU's model where it
    ran on one, the CPU's otherwise, "unknown" where neither was recorded."""
    return hardware.get("gpu") or hardware.get("cpu") or "unknown"
