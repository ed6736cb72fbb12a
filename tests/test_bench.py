"""mixlib.bench measures what it says: an op's own peak memory, and a table for every backend."""
import torch

from mixlib import bench


def test_peak_memory_counts_what_the_op_holds_at_once():
    cpu = torch.device("cpu")
    mib = 2 ** 20

    def two_buffers_at_once():
        a = torch.ones(4 * mib // 4)  # 4 MiB of float32
        b = torch.ones(8 * mib // 4)  # 8 MiB, while a is alive
        return a.sum() + b.sum()

    def one_after_the_other():
        for _ in range(2):
            torch.ones(8 * mib // 4).sum()  # freed before the next one

    held = bench.peak_memory_bytes(two_buffers_at_once, cpu)
    assert 12 * mib <= held < 13 * mib
    sequential = bench.peak_memory_bytes(one_after_the_other, cpu)
    assert 8 * mib <= sequential < 9 * mib


def test_aggregate_bench_covers_every_backend(capsys):
    rows = bench.bench_aggregate(device=torch.device("cpu"), batch=2, maps=((8, 64),), kernels=(3,),
                                 repeats=1)
    static = {r["backend"] for r in rows if r["weights"] == "static per-channel"}
    dynamic = {r["backend"] for r in rows if r["weights"].startswith("dynamic")}
    assert static == {"reference", "lean", "conv", "auto", "F.conv2d"}
    assert dynamic == {"reference", "lean", "auto"}
    assert all(r["ms"] > 0 and r["peak_mb"] > 0 for r in rows)
    assert all(r["time_vs_reference"] == 1.0 for r in rows if r["backend"] == "reference")


def test_cli_prints_the_table(capsys):
    assert bench.main(["aggregate", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| 16x16x64 | 7 | dynamic G=8 | lean |" in out
    assert "F.conv2d" in out


def test_neighborhood_bench_compares_both_implementations():
    rows = bench.bench_neighborhood(device=torch.device("cpu"), batch=1, sizes=(8,), repeats=1)
    assert {r["implementation"] for r in rows} == {"aggregate", "dense"}
    assert all(r["ms"] > 0 for r in rows)
