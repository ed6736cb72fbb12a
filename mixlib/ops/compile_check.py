"""Compile the Triton kernels ahead of time for GPUs this machine need not have.

    python -m mixlib.ops.compile_check [--all] [--archs 75,80,90] [--sizes 7,13] [--json out.json]

Each specialisation (kernel × dtype × kernel size × constexpr variant × tile) goes through
Triton's whole pipeline (Triton IR, LLVM, PTX, and ptxas, which Triton ships, to a cubin) for
each compute capability, with no GPU and no CUDA driver: what a GPU would JIT on first use
fails here first. For each cubin it reports the registers per thread and the local memory
(spills) that ``cuobjdump --dump-resource-usage`` (also shipped with Triton) reads from it, and
it checks that no kernel uses atomics (the results must not depend on the order of a race).

A tile is what ``triton_kernels.launch_tile`` gives a map (BLOCK_C channels × BLOCK_P pixels and
the warps): ``_tiles`` names four, from a depthwise layer on a large map (one channel, 1024
pixels: the most per-pixel work per thread) to a small CIFAR map with wide groups.

The default set is a quick subset (48, seconds): every kernel, variant and dtype at k = 7 for
sm_75 (Colab's T4) on the depthwise tile, and every kernel and variant in bfloat16 at k = 13
for sm_80 and sm_90 on the depthwise and the wide-group tile. ``--all`` compiles every kernel
size (k = 1..13), dtype and variant on the depthwise tile and every tile at k = 13, for every
capability: 708 compilations, about two minutes with two processes on two cores; CI runs it.
Exit status 1 if any specialisation fails to compile or uses atomics. ``--json`` writes the
results with what they were made of: the versions, the commit and a hash of each Triton
function's code (`kernel_sources`), so that a test can tell whether a committed record of
``--all`` still describes the kernels (``tests/test_compile_triton.py``).

TRITON_INTERPRET must be unset: under the interpreter ``triton.jit`` returns functions that
cannot be compiled.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ARCHS = (75, 80, 90)
DTYPES = ("fp32", "bf16", "fp16", "fp64")
KERNEL_SIZES = (1, 3, 5, 7, 9, 11, 13)

# (argument names of the pointers, then the int arguments) of each kernel; constexprs follow
_POINTERS = {"_aggregate": ("x_ptr", "w_ptr", "rows_ptr", "cols_ptr", "y_ptr"),
             "_adjoint": ("x_ptr", "w_ptr", "rows_ptr", "cols_ptr", "y_ptr"),
             "_similarity": ("q_ptr", "k_ptr", "rows_ptr", "cols_ptr", "out_ptr")}
_INTS = {"_aggregate": ("C", "H", "W", "G_CH", "w_sb", "w_sg", "w_so", "w_sh", "w_sw"),
         "_adjoint": ("C", "H", "W", "G_CH", "DILATION", "w_sb", "w_sg", "w_so", "w_sh", "w_sw"),
         "_similarity": ("C", "H", "W", "G", "G_CH")}


def _tiles() -> dict[str, dict]:
    """Named tiles of ``launch_tile``, as constexprs and warps: the launches of four maps."""
    from .triton_kernels import launch_tile
    maps = {"depthwise 56²": (56 * 56, 1), "groups of 32, 32²": (32 * 32, 32),
            "groups of 16, 4²": (4 * 4, 16), "groups of 96, 2²": (2 * 2, 96)}
    return {name: dict(zip(("BLOCK_C", "BLOCK_P", "num_warps"), launch_tile(pixels, channels)))
            for name, (pixels, channels) in maps.items()}


def variants(kernel: str, k: int) -> list[dict]:
    """The constexpr settings a launch can give `kernel` at kernel size k (besides dtype and
    tile)."""
    if kernel == "_adjoint":  # how far the pixels that read a pixel lie: zeros, then clamp
        return [{"REACH": k // 2}, {"REACH": 2 * (k // 2)}][: 1 if k == 1 else 2]
    if kernel == "_similarity":  # logits, masked logits, a broadcast weight's partial sums
        return [{"MASKED": False, "REDUCE": False}, {"MASKED": True, "REDUCE": False},
                {"MASKED": False, "REDUCE": True}]
    return [{}]


def specialisations(full: bool) -> list[tuple[str, str, int, dict, int]]:
    """(kernel, dtype, k, variant, arch) for every compilation to run; the variant holds the
    tile (BLOCK_C, BLOCK_P, num_warps)."""
    kernels, tiles = tuple(_POINTERS), list(_tiles().values())
    depthwise, wide = tiles[:2]
    if full:
        plan = [(DTYPES, KERNEL_SIZES, ARCHS, [depthwise]), (DTYPES, (13,), ARCHS, tiles[1:])]
    else:
        plan = [(DTYPES, (7,), (75,), [depthwise]), (("bf16",), (13,), (80, 90), [depthwise, wide])]
    return [(kernel, dtype, k, {**variant, **tile}, arch)
            for dtypes, sizes, archs, tile_set in plan
            for arch in archs for k in sizes for dtype in dtypes for tile in tile_set
            for kernel in kernels for variant in variants(kernel, k)]


def kernel_sources() -> dict[str, str]:
    """{name: sha256} of the code of every Triton function in ``triton_kernels`` (the kernels
    and the jitted helpers they call), docstrings and comments left out: what a compilation
    record was made of. The same with TRITON_INTERPRET set or not, and on every Python the
    project allows. The kernels read no module-level constant and call no jitted function of
    another module; one that did would need those hashed too."""
    import triton

    from . import triton_kernels

    def code(function) -> str:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        body = tree.body[0].body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body.pop(0)  # the docstring
        return ast.unparse(tree)  # not ast.dump, whose fields differ between Pythons

    return {name: hashlib.sha256(code(value.fn).encode()).hexdigest()
            for name, value in sorted(vars(triton_kernels).items())
            if isinstance(value, triton.runtime.jit.KernelInterface)}


def _tools() -> Path:
    import triton.backends.nvidia
    return Path(triton.backends.nvidia.__file__).parent / "bin"


def resource_usage(cubin: bytes) -> dict:
    """Registers, local memory (spills) and stack of the one function in a cubin."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([str(_tools() / "cuobjdump"), "--dump-resource-usage", f.name],
                             capture_output=True, text=True, check=True).stdout
    found = dict(re.findall(r"\b(REG|STACK|LOCAL|SHARED):(\d+)", out))
    return {"registers": int(found["REG"]), "local_bytes": int(found["LOCAL"]),
            "stack_bytes": int(found["STACK"])}


def compile_one(kernel: str, dtype: str, k: int, variant: dict, arch: int) -> dict:
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import triton_kernels

    signature = {name: ("*i32" if name.endswith(("rows_ptr", "cols_ptr")) else f"*{dtype}")
                 for name in _POINTERS[kernel]}
    if variant.get("REDUCE"):  # partial sums are written in the accumulator's dtype
        signature["out_ptr"] = "*fp64" if dtype == "fp64" else "*fp32"
    signature.update({name: "i32" for name in _INTS[kernel]})
    constexprs = {"KERNEL": k, "ACC": tl.float64 if dtype == "fp64" else tl.float32, **variant}
    num_warps = constexprs.pop("num_warps")
    signature.update({name: "constexpr" for name in constexprs})
    # pointers from the PyTorch allocator are 16-byte aligned: what a launch specialises on
    aligned = {(i,): [["tt.divisibility", 16]] for i in range(len(_POINTERS[kernel]))}
    start = time.perf_counter()
    compiled = triton.compile(
        ASTSource(getattr(triton_kernels, kernel), signature, constexprs=constexprs, attrs=aligned),
        target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
    return {"kernel": kernel, "dtype": dtype, "k": k, "variant": variant, "arch": f"sm_{arch}",
            **resource_usage(compiled.asm["cubin"]),
            "num_warps": compiled.metadata.num_warps, "shared_bytes": compiled.metadata.shared,
            "atomics": "atomic" in compiled.asm["ttir"],
            "seconds": round(time.perf_counter() - start, 2)}


def _compile_spec(spec) -> dict:
    try:
        return compile_one(*spec)
    except Exception as error:  # report every failure, not only the first
        kernel, dtype, k, variant, arch = spec
        return {"kernel": kernel, "dtype": dtype, "k": k, "variant": variant, "arch": f"sm_{arch}",
                "error": f"{type(error).__name__}: {error}"}


def run(full: bool = False, archs=ARCHS, workers: int | None = None,
        sizes=KERNEL_SIZES) -> list[dict]:
    """Compile the chosen specialisations (those of `archs` and kernel `sizes`) in a fresh
    Triton cache (a warm cache would skip the compilation this checks), `workers` processes
    at a time."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise ValueError("TRITON_INTERPRET=1 is set: the interpreter's kernels cannot be compiled; "
                         "run this in a process without it")
    specs = [s for s in specialisations(full) if s[4] in archs and s[2] in sizes]
    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TRITON_CACHE_DIR"] = cache
        if workers == 1:
            return [_compile_spec(s) for s in specs]
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_compile_spec, specs))


def format_table(results: list[dict]) -> str:
    """Registers and spills per kernel, variant, dtype and k, one column per capability."""
    archs = sorted({r["arch"] for r in results})
    rows = {}
    for r in results:
        key = (r["kernel"], json.dumps(r["variant"]), r["dtype"], r["k"])
        rows.setdefault(key, {})[r["arch"]] = (
            "FAILED" if "error" in r else f"{r['registers']} / {r['local_bytes']}")
    lines = ["| kernel | variant | dtype | k | " + " | ".join(archs) + " |",
             "|---|---|---|---|" + "---|" * len(archs)]
    for (kernel, variant, dtype, k), cells in sorted(rows.items()):
        lines.append(f"| {kernel} | {variant} | {dtype} | {k} | "
                     + " | ".join(cells.get(a, "") for a in archs) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true",
                        help="every specialisation (708; CI runs it), not the quick subset of 48")
    parser.add_argument("--archs", default=",".join(map(str, ARCHS)),
                        help="compute capabilities, e.g. 75,80,90")
    parser.add_argument("--sizes", default=",".join(map(str, KERNEL_SIZES)),
                        help="kernel sizes, e.g. 7,13")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: the cores)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    archs = tuple(int(a) for a in args.archs.split(","))
    sizes = tuple(int(k) for k in args.sizes.split(","))
    workers = args.workers or os.cpu_count() or 1
    if args.json:  # read before compiling: an edit made meanwhile is not recorded as compiled
        from ..provenance import code_commit
        made_of = {"commit": code_commit(), "kernel_sources": kernel_sources()}
    start = time.perf_counter()
    results = run(args.all, archs, workers, sizes)
    print(format_table(results))
    failed = [r for r in results if "error" in r or r["atomics"]]
    for r in failed:
        print("FAILED:", r, file=sys.stderr)
    print(f"{len(results)} specialisations, {len(failed)} failed, "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.json:
        import torch
        import triton

        from ..files import atomic_write
        from ..provenance import environment
        record = {"command": shlex.join(["python", "-m", "mixlib.ops.compile_check",
                                         *(sys.argv[1:] if argv is None else argv)]),
                  "triton": triton.__version__, **environment(torch.device("cpu")),
                  "workers": workers, **made_of, "seconds": round(time.perf_counter() - start),
                  "results": results}
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
