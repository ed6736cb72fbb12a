"""mixlib.bench measures what it says: an op's own peak memory, and a table for every backend."""
import json
import math

import pytest
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


_MEASURED = ("backend", "ms", "peak_mb", "time_vs_reference", "memory_vs_reference",
             "time_vs_conv2d")


def _assert_ratios_to_the_first_of_each_group(rows, first=None):
    """Each row's ratios are its time and memory over those of its group's base row (the rows
    that differ only in the backend): the row of backend `first` if given, else the first."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple((k, v) for k, v in row.items() if k not in _MEASURED), []).append(row)
    for group in groups.values():
        (base,) = [r for r in group if r["backend"] == first] if first else group[:1]
        for row in group:
            assert row["time_vs_reference"] == pytest.approx(row["ms"] / base["ms"])
            assert row["memory_vs_reference"] == pytest.approx(row["peak_mb"] / base["peak_mb"])


def test_aggregate_bench_covers_every_backend(capsys):
    rows = bench.bench_aggregate(device=torch.device("cpu"), batch=2, maps=((8, 64),), kernels=(3,),
                                 repeats=1)
    static = {r["backend"] for r in rows if r["weights"] == "static per-channel"}
    dynamic = {r["backend"] for r in rows if r["weights"].startswith("dynamic")}
    assert static == {"reference", "lean", "conv", "auto", "F.conv2d"}
    assert dynamic == {"reference", "lean", "auto"}
    assert all(r["ms"] > 0 and r["peak_mb"] > 0 for r in rows)
    _assert_ratios_to_the_first_of_each_group(rows, first="reference")


def test_small_maps_bench_puts_dense_beside_lean_and_conv(capsys):
    assert bench.main(["small-maps", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "ratios to the first of each group" in out and "| dense |" in out and "| lean |" in out
    rows = bench.bench_small_maps(device=torch.device("cpu"), batch=2, maps=((4, 16),), repeats=1)
    assert [(r["weights"], r["k"], r["backend"]) for r in rows] == [
        ("dynamic G=8", 7, "lean"), ("dynamic G=8", 7, "dense"),
        ("static per-channel, dilation 3", 7, "conv"), ("static per-channel, dilation 3", 7, "dense"),
        *((("static per-channel", k, "F.conv2d"), ("static per-channel", k, "own derivatives"))[i]
          for k in (3, 5, 7) for i in (0, 1)),
        ("static per-channel, the kernel's gradient", 7, "convolution_backward"),
        ("static per-channel, the kernel's gradient", 7, "dense")]
    _assert_ratios_to_the_first_of_each_group(rows)
    assert all(r["ms"] > 0 and r["peak_mb"] > 0 for r in rows)


def test_cli_prints_the_table(capsys):
    assert bench.main(["aggregate", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| 16x16x64 | 7 | dynamic G=8 | lean |" in out
    assert "F.conv2d" in out


def test_neighborhood_bench_compares_both_implementations():
    rows = bench.bench_neighborhood(device=torch.device("cpu"), batch=1, sizes=(8,), repeats=1)
    assert {r["implementation"] for r in rows} == {"aggregate", "dense", "tiled"}  # flex: GPU only
    assert all(r["ms"] > 0 for r in rows)


def test_neighborhood_bench_keeps_the_other_columns_when_one_fails():
    rows = bench.bench_neighborhood(device=torch.device("cpu"), batch=1, sizes=(8,), repeats=1,
                                    implementations=("aggregate", "no-such"))
    good, bad = rows
    assert good["implementation"] == "aggregate" and good["ms"] > 0
    assert good["time_vs_aggregate"] == 1.0
    assert "ms" not in bad and "ValueError" in bad["error"] and "no-such" in bad["error"]
    table = bench.format_neighborhood(rows)
    assert "| no-such | failed: ValueError" in table


def test_forward_flops_count_what_the_counter_misses():
    from mixlib import mixers
    # a depthwise conv is a convolution: the counter sees it, nothing by formula
    conv = bench.forward_flops(mixers.build("dwconv", 8, kernel_size=3), torch.randn(1, 8, 6, 6))
    assert conv["counter"] == 2 * 8 * 36 * 9 and conv["aggregate"] == 0
    # ... also where a 7×7 kernel on a small map runs as mixlib's op (its own derivatives)
    conv = bench.forward_flops(mixers.build("dwconv", 8, kernel_size=7), torch.randn(1, 8, 6, 6))
    assert conv["counter"] == 2 * 8 * 36 * 49 and conv["aggregate"] == 0
    # I-D-DW's aggregation is elementwise: 2 FLOPs per channel, pixel and offset, by formula
    idw = mixers.build("idwconv", 8, kernel_size=3, groups=2, reduction=4).eval()
    flops = bench.forward_flops(idw, torch.randn(1, 8, 6, 6))
    assert flops["aggregate"] == 2 * 8 * 36 * 9
    generator = 2 * 36 * (8 * 2 + 2 * 18)  # the two 1×1 convs: 8 -> 2 -> 18 channels
    assert flops["counter"] == generator
    gf = bench.forward_flops(mixers.build("global_filter", 4, size=(8, 8)), torch.randn(1, 4, 8, 8))
    assert gf["counter"] == 0 and gf["fft"] > 0
    # pooling: 3×3 means minus x, 10 FLOPs per output value, by formula
    pool = bench.forward_flops(mixers.build("pooling", 4, pool_size=3), torch.randn(2, 4, 6, 6))
    assert pool["counter"] == 0 and pool["pooling"] == 2 * 4 * 36 * 10 == pool["total"]


def test_model_bench_row():
    from mixlib import models
    row = bench.bench_model(models.build("dwconv_cifar", width=8), image_size=32, batch=4,
                            device=torch.device("cpu"), repeats=1)
    assert row["gflops_train"] == pytest.approx(3 * row["gflops_forward"])
    assert row["train_img_s"] > 0 and row["infer_img_s"] > 0 and row["train_peak_mb"] > 0


def test_model_bench_row_with_autocast_times_both_in_turns():
    from mixlib import models
    row = bench.bench_model(models.build("dwconv_cifar", width=8), image_size=32, batch=4,
                            device=torch.device("cpu"), repeats=1, amp="bf16")
    assert row["amp"] == "bf16" and row["train_img_s_amp"] > 0
    assert math.isfinite(row["train_speed_amp_vs_fp32"]) and row["train_speed_amp_vs_fp32"] > 0
    assert "(bf16)" in bench.format_models([{"model": "dwconv_cifar", "image_size": 32, **row}])
    with pytest.raises(ValueError, match="amp must be 'off' or one of \\['bf16'\\], got 'fp8'"):
        bench.bench_model(models.build("dwconv_cifar", width=8), image_size=32, batch=4,
                          device=torch.device("cpu"), repeats=1, amp="fp8")


def test_mixer_complexity_row():
    from mixlib import mixers
    row = bench.mixer_complexity(mixers.build("dwconv", 16, kernel_size=3), size=8, batch=2)
    assert row["params"] == 16 * 9 + 16
    assert row["gflops"] == pytest.approx(2 * 16 * 64 * 9 / 1e9)
    assert row["peak_mb"] > 0


def test_model_bench_measures_timm_twin_in_turns():
    rows = bench.bench_models(["poolformer_s12"], device=torch.device("cpu"), batch=1, repeats=1,
                              vs_timm=True)
    row = rows[0]
    assert row["timm_model"] == "poolformer_s12" and row["timm_params"] == row["params"]
    assert row["timm_train_img_s"] > 0
    assert math.isfinite(row["train_speed_vs_timm"]) and row["train_speed_vs_timm"] > 0


def test_models_json_is_what_results_reads(tmp_path):
    from mixlib import results
    path = tmp_path / "models.json"
    assert bench.main(["models", "--models", "pooling_cifar", "--batch", "2", "--repeats", "1",
                       "--json", str(path)]) == 0
    rows, machine = results.load_bench(path)
    assert set(rows) == {"pooling_cifar"} and rows["pooling_cifar"]["train_img_s"] > 0
    assert machine["batch"] == 2 and machine["device"] == "cpu"
    assert machine["commit"] == bench.code_commit()
    assert [p.name for p in tmp_path.iterdir()] == ["models.json"]  # no temporary file left


def test_mlp_bench_times_both_paths_and_names_the_one_picked(capsys):
    assert bench.main(["mlp", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| 2x8x8x8 |" in out and "| conv |" in out      # 64 pixels for 8 channels
    assert "| 2x64x2x2 |" in out and "| matmul |" in out   # 4 pixels for 64 channels


def test_bench_which_small_is_the_mixer_presets_and_all_adds_the_reference_networks():
    small = bench.preset_names("small")
    assert "dwconv_cifar" in small and "cctt_imagenette" in small
    assert "denseconv_cifar" not in small and "dwconv_refnet_cifar" not in small
    assert "swin_t" in bench.preset_names("imagenet") and "dwconv_cifar" not in bench.preset_names("imagenet")
    assert {"denseconv_cifar", "dwconv_refnet_cifar", "swin_t", "dwconv_cifar"} <= set(bench.preset_names("all"))
    with pytest.raises(ValueError, match="which must be one of .* got 'tiny'"):
        bench.preset_names("tiny")


def test_models_in_turns_time_every_preset_in_the_same_rounds(monkeypatch):
    seen = []
    real = bench.time_each_ms

    def spy(runs, device, repeats):
        seen.append(sorted(runs))
        return real(runs, device, repeats)

    monkeypatch.setattr(bench, "time_each_ms", spy)
    rows = bench.bench_models(["pooling_cifar", "dwconv_cifar"], device=torch.device("cpu"), batch=2,
                              repeats=1, turns=True)
    assert seen == [["dwconv_cifar", "pooling_cifar"]]  # one call: both steps in each round
    assert all(row["train_img_s_turns"] > 0 for row in rows)
    plain = bench.bench_models(["pooling_cifar"], device=torch.device("cpu"), batch=2, repeats=1)
    assert "train_img_s_turns" not in plain[0]


def test_models_at_another_image_size_build_the_small_presets_for_it():
    """The sweep trains Imagenette at 128 px, not the presets' own 160: the benchmark that its
    estimates read must time the same networks."""
    row, = bench.bench_models(["global_filter_imagenette"], device=torch.device("cpu"), batch=2,
                              repeats=1, image_size=64)
    assert row["image_size"] == 64
    own, = bench.bench_models(["global_filter_imagenette"], device=torch.device("cpu"), batch=2,
                              repeats=1)
    assert own["image_size"] == 160 and own["params"] != row["params"]  # filters of the map's size
    with pytest.raises(ValueError, match="image_size=64 is for the small presets only.*poolformer_s12"):
        bench.bench_models(["poolformer_s12"], device=torch.device("cpu"), batch=1, repeats=1,
                           image_size=64)


def test_host_reads_bench_reads_five_times_a_step_before_and_once_per_20_steps_after(monkeypatch):
    """The two forms of the loop differ in how often the loop itself reads the device: count the
    reads (item, tolist, int, float, bool of a tensor) made by the bench's own code in each form
    (the model and the optimiser read what they read in both)."""
    import sys
    from mixlib import models

    reads = []

    def counting(original):
        def read(self, *args):
            if sys._getframe(1).f_code.co_filename == bench.__file__:
                reads.append(1)
            return original(self, *args)
        return read

    for name in ("item", "tolist", "__int__", "__float__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
    torch.manual_seed(0)
    model = models.build("pooling_cifar", width=8)
    x, y = bench._batch(2, 32, torch.device("cpu"))
    for steps, before, after in ((3, 15, 1), (40, 200, 2)):
        counted = {}
        for form in ("before", "after"):
            reads.clear()
            bench._training_steps(model, x, y, steps=steps, read_every_step=form == "before")()
            counted[form] = len(reads)
        assert counted == {"before": before, "after": after}, steps


def test_host_reads_cli_writes_one_row_per_preset(tmp_path, capsys):
    out = tmp_path / "reads.json"
    assert bench.main(["host-reads", "--quick", "--device", "cpu", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["pooling_cifar"]
    row = rows[0]
    assert row["img_s_before"] > 0 and row["img_s_after"] > 0
    assert row["speedup"] == pytest.approx(row["img_s_after"] / row["img_s_before"])
    assert "| pooling_cifar |" in capsys.readouterr().out


@pytest.mark.parametrize("arg", ["batch", "steps", "repeats"])
def test_host_reads_bench_names_a_count_below_one(arg):
    with pytest.raises(ValueError, match=f"{arg} must be an int >= 1, got 0"):
        bench.bench_host_reads(["pooling_cifar"], device=torch.device("cpu"), **{arg: 0})
