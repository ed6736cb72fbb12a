"""The Triton kernels compile ahead of time for sm_75, sm_80 and sm_90 on a machine without a
GPU (``mixlib.ops.compile_check``): the CI subset here, every specialisation with
MIXLIB_COMPILE_ALL=1 (a few minutes on two cores).

The compilation runs in a child process without TRITON_INTERPRET (conftest.py sets it for this
one, and interpreted kernels cannot be compiled).
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")


def test_every_kernel_compiles_for_three_gpu_generations(tmp_path):
    out = tmp_path / "compile.json"
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    command = [sys.executable, "-m", "mixlib.ops.compile_check", "--json", str(out)]
    if os.environ.get("MIXLIB_COMPILE_ALL") == "1":
        command.append("--all")
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
