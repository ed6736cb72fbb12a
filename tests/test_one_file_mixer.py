"""A mixer is one file: a new mixer declared in one place (here, in this test) gets the book's
small presets, its bench rows with its FLOP formula, and training with its weight-decay rule,
without a line elsewhere; and the registry's declarations reproduce the rules they replaced."""
import pytest
import torch
import torch.nn as nn

from mixlib import bench, mixers, models
from mixlib import train as mtrain
from mixlib.data import data_root
from mixlib.layers import check_int, check_map
from mixlib.mixers import FlopFormula, MixerInfo, SmallMap, map_pixels, register_mixer
from mixlib.models import small


def _toy_flops(module, inputs, output) -> int:
    return 2 * output.numel()  # one multiply-add per value: x + gate ⊙ roll(x)


def _toy_fit(stage: SmallMap) -> dict:
    return dict(shift=max(stage.size // 8, 1))  # a shift that grows with the map


@pytest.fixture
def toy_mixer():
    """Everything a contributor writes for a new mixer, in one class."""

    @register_mixer("toy_shift")
    class ToyShift(nn.Module):
        """y_i = x_i + g_c ⊙ x_{i - (s, s)} (circular): one neighbour, a static gate per channel."""

        info = MixerInfo(neighbourhood="one shifted pixel", sharing="channel", weights="static",
                         paper="yu2022metaformer", small=_toy_fit, small_width=40,
                         flops=FlopFormula("toy", _toy_flops), no_weight_decay=("gate_table",))

        def __init__(self, dim: int, *, shift: int = 1):
            super().__init__()
            self.dim = check_int("dim", dim)
            self.shift = check_int("shift", shift)
            self.gate_table = nn.Parameter(torch.full((dim, 1), 0.5))  # 2-D, yet no decay

        def forward(self, x):
            check_map(x, self.dim, self)
            rolled = torch.roll(x, (self.shift, self.shift), dims=(2, 3))
            return x + self.gate_table.view(1, -1, 1, 1) * rolled

        def multiply_adds(self, height, width):
            return map_pixels(height, width) * self.dim  # x + g ⊙ roll(x): one per value

    yield ToyShift
    mixers.unregister_mixer("toy_shift")
    models.available()  # drops its presets again


def test_a_new_mixer_gets_small_presets(toy_mixer):
    assert {"toy_shift_cifar", "toy_shift_imagenette"} <= set(models.available())
    assert {"toy_shift_cifar", "toy_shift_imagenette"} <= set(small.PRESETS)
    model = models.build("toy_shift_cifar")
    assert model.dims == [40, 80, 160, 320]
    assert [r["shift"] for r in small.stage_settings("toy_shift_cifar")] == [2, 1, 1, 1]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_new_mixer_gets_bench_rows_with_its_flop_formula(toy_mixer):
    flops = bench.forward_flops(toy_mixer(8), torch.randn(1, 8, 6, 6))
    assert flops["toy"] == 2 * 8 * 36 == flops["total"]
    assert 2 * toy_mixer(8).multiply_adds(6, 6) == flops["total"]  # the registry's contract
    rows = bench.bench_models(["toy_shift_cifar"], device=torch.device("cpu"), batch=2, repeats=1)
    assert rows[0]["gflops_by_formula"] > 0 and rows[0]["train_img_s"] > 0
    assert "toy_shift_cifar" in bench.preset_names("small")


def test_a_new_mixer_trains_with_its_weight_decay_rule(toy_mixer):
    torch.manual_seed(0)
    model = models.build("toy_shift_cifar", width=8)
    config = mtrain.TrainConfig(model="toy_shift_cifar", model_kwargs={"width": 8})
    optimizer = mtrain._optimizer(config, model, fused=None)
    decay, no_decay = optimizer.param_groups
    gates = {id(m.gate_table) for m in model.modules() if isinstance(m, toy_mixer)}
    assert gates and gates <= {id(p) for p in no_decay["params"]} and no_decay["weight_decay"] == 0
    assert not gates & {id(p) for p in decay["params"]}
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    losses = []
    for _ in range(5):  # a few steps on one random batch: the loss falls
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.skipif(data_root() is None, reason="no data folder")
def test_a_new_mixer_trains_through_mixlib_train(toy_mixer, tmp_path):
    config = mtrain.TrainConfig(model="toy_shift_cifar", data="cifar10", epochs=1, batch_size=64,
                                out=str(tmp_path), quick=True, model_kwargs={"width": 8},
                                device="cpu", run="toy", log_every=100)
    result = mtrain.train(config, log=lambda *a: None)
    assert 0.0 <= result["test_acc"] <= 1.0


def test_the_registry_gone_the_presets_go(toy_mixer):
    assert {"toy_shift_cifar", "toy_shift_imagenette"} <= set(models.available())
    mixers.unregister_mixer("toy_shift")
    assert not [n for n in models.available() if n.startswith("toy_shift")]
    register_mixer("toy_shift")(toy_mixer)  # back, for the fixture to take away


def test_declared_tables_are_the_ones_the_name_rule_skipped():
    """The weight-decay rule read from the registry gives every preset the groups the old
    name-based rule gave ("bias_table" or "rpb" in the name, 2-D or more)."""
    for name in models.available():
        model = models.build(name)
        tables = mixers.no_weight_decay(model)
        for key, p in model.named_parameters():
            old = p.dim() >= 2 and "bias_table" not in key and "rpb" not in key
            assert old == (p.dim() >= 2 and key not in tables), (name, key)


def test_every_small_mixer_declares_its_fit_and_width():
    for name in mixers.available():
        declared = mixers.info(name)
        assert declared.small is not None and declared.small_width is not None, name


@pytest.mark.parametrize("missing", ["info", "multiply_adds"])
def test_a_mixer_without_its_declarations_is_refused_by_name(missing):
    body = {"info": MixerInfo(neighbourhood="one pixel", sharing="channel", weights="static",
                              paper="yu2022metaformer"),
            "multiply_adds": lambda self, height, width: 0}
    del body[missing]
    incomplete = type("Incomplete", (nn.Module,), body)
    with pytest.raises(TypeError, match=missing):
        register_mixer("incomplete")(incomplete)
    assert "incomplete" not in mixers.available()
