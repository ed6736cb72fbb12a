"""The Triton kernels compile ahead of time for sm_75, sm_80 and sm_90 on a machine without a
GPU (``mixlib.ops.compile_check --all``): every specialisation, 708 compilations, about two
minutes on two cores. The committed record of the same (results/bench/triton-compile.json),
which the bench README reports, must be of these kernels: a change to their code fails here
until ``--all`` has written it again.

The compilation runs in a child process without TRITON_INTERPRET (conftest.py sets it for this
one, and interpreted kernels cannot be compiled).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[1]


def test_every_kernel_compiles_for_three_gpu_generations(tmp_path):
    out = tmp_path / "compile.json"
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    command = [sys.executable, "-m", "mixlib.ops.compile_check", "--all", "--json", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert {r["arch"] for r in results} == {"sm_75", "sm_80", "sm_90"}
    assert {r["kernel"] for r in results} == {"_aggregate", "_adjoint", "_similarity"}
    assert {r["dtype"] for r in results} == {"fp32", "bf16", "fp16", "fp64"}
    for r in results:
        assert not r["atomics"], r  # deterministic: no sum depends on the order of a race
        assert r["local_bytes"] == 0, r  # no spills to local memory
        # 4 tile elements per thread and loops that are not unrolled keep k = 13 well below
        # the 255 a thread can have: at most 128 leaves room for 2 programs of 8 warps per SM
        assert r["registers"] <= 128, r
    # the committed record, which the bench README reports, says what this compilation says
    record = json.loads((ROOT / "results" / "bench" / "triton-compile.json").read_text())

    def usage(rows):
        return {(r["kernel"], r["dtype"], r["k"], json.dumps(r["variant"], sort_keys=True),
                 r["arch"]): (r["registers"], r["local_bytes"], r["stack_bytes"],
                              r["shared_bytes"], r["num_warps"]) for r in rows}

    assert len(results) == 708
    import triton
    if record["triton"] == triton.__version__:  # another Triton's ptxas may allocate otherwise
        assert usage(record["results"]) == usage(results), (
            "the counts differ from the record's: run python -m mixlib.ops.compile_check --all "
            "--json results/bench/triton-compile.json")


def test_the_specialisations_cover_every_variant():
    """Every dtype, kernel size and constexpr variant a launch can ask for is in the full set,
    on the depthwise tile, and every named tile at k = 13."""
    from mixlib.ops.compile_check import specialisations
    full = specialisations(full=True)
    per_tile = 1 + 2 + 3  # aggregate, adjoint (zeros, clamp), similarity (3 variants)
    depthwise = 3 * 4 * (7 * per_tile - 1)  # archs × dtypes × (k = 1..13; k = 1: one adjoint)
    assert len(full) == depthwise + 3 * 4 * 3 * per_tile  # and three more tiles at k = 13
    assert {(s[0], s[2], json.dumps(s[3])) for s in specialisations(full=False)} <= \
        {(s[0], s[2], json.dumps(s[3])) for s in full}


def test_the_record_of_every_specialisation_is_of_these_kernels():
    """results/bench/triton-compile.json holds ``--all`` of the kernels as they are: the same
    code (docstrings aside) and set of specialisations, none failed, no atomics, no spills, at
    most 128 registers; with another Triton than the record's there is nothing to compare. Its command: python -m mixlib.ops.compile_check --all
    --json results/bench/triton-compile.json (TRITON_INTERPRET unset)."""
    import triton

    from mixlib.ops import compile_check
    record = json.loads((ROOT / "results" / "bench" / "triton-compile.json").read_text())
    command = "python -m mixlib.ops.compile_check --all --json results/bench/triton-compile.json"
    now = compile_check.kernel_sources()
    changed = sorted({name for name, _ in set(now.items()) ^ set(record["kernel_sources"].items())})
    assert not changed, (f"Triton functions {changed} differ from the record's (commit "
                         f"{record['commit']}): run {command}")
    if record["triton"] != triton.__version__:  # requirements.txt admits others; CI pins it
        pytest.skip(f"the record is of Triton {record['triton']}, this is {triton.__version__}")

    def key(kernel, dtype, k, variant, arch):
        return kernel, dtype, k, json.dumps(variant, sort_keys=True), arch

    assert sorted(key(r["kernel"], r["dtype"], r["k"], r["variant"], r["arch"])
                  for r in record["results"]) == sorted(
        key(kernel, dtype, k, variant, f"sm_{arch}")
        for kernel, dtype, k, variant, arch in compile_check.specialisations(full=True)), (
        f"the specialisations (compile_check.specialisations, launch_tile) differ from the "
        f"record's: run {command}")
    for r in record["results"]:
        assert "error" not in r and not r["atomics"], r
        assert r["local_bytes"] == 0 and r["registers"] <= 128, r

