"""The models: every preset's parameter count, a forward pass of each, and the small models.
Whole-model parity with timm, through the checkpoint converters: tests/test_convert.py."""
import re

import pytest
import torch
import torch.nn as nn

from mixlib import mixers, models

# Parameter counts of the reference implementations, 1000 classes (mixers.md, section 10)
REFERENCE_PARAMS = {
    "swin_t": 28.29e6, "dwnet_t": 24.17e6, "ddwnet_t": 51.13e6, "idwnet_t": 26.24e6,
    "elsa_swin_t": 29.14e6, "van_b0": 4.11e6, "coatnet_0": 25.04e6, "hornet_t_7x7": 22.41e6,
    "hornet_t_gf": 22.99e6, "gfnet_ti": 7.51e6, "convnext_t": 28.59e6, "poolformer_s12": 11.92e6,
}


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_imagenet_preset_has_the_reference_codes_parameter_count(name):
    params = count(models.build(name, num_classes=1000))
    # the references are rounded to 0.01 M: half of that either way
    assert abs(params - REFERENCE_PARAMS[name]) <= 5e3, f"{name}: {params:,}"


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_imagenet_preset_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = models.build(name, num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert model.head.fc.weight.grad is not None
    assert all(m.shape[0] == 2 for m in model.features(x))


def test_unknown_preset():
    with pytest.raises(ValueError, match="'resnet50'"):
        models.build("resnet50")


# ---------------------------------------------------------------------------------------------
# whole models against timm: tests/test_convert.py (timm's weights through convert_checkpoint)

# ---------------------------------------------------------------------------------------------
# the small models of the book

from mixlib.models import small  # noqa: E402

SMALL = [name for name in models.available() if name.endswith(("_cifar", "_imagenette"))]


def test_every_mixer_has_a_small_cifar_and_imagenette_model():
    from mixlib import mixers
    for mixer in mixers.available():
        assert f"{mixer}_cifar" in SMALL and f"{mixer}_imagenette" in SMALL


@pytest.mark.parametrize("name", SMALL)
def test_small_models_share_one_parameter_budget(name):
    params = count(models.build(name, num_classes=10))
    assert abs(params / small.SMALL_BUDGET - 1) <= 0.15, f"{name}: {params:,}"


@pytest.mark.parametrize("name", [n for n in SMALL if n.endswith("_cifar")])
def test_small_cifar_models_train_one_step(name):
    torch.manual_seed(0)
    model = models.build(name)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("size", [112, 128, 160])
def test_small_imagenette_models_take_112_128_and_160_pixels(size):
    for name in ("relative_attention_imagenette", "global_filter_imagenette", "window_attention_imagenette"):
        model = models.build(name, image_size=size).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, size, size)).shape == (1, 10)


def test_hybrid_cctt_puts_convolutions_first_and_attention_last():
    from mixlib.mixers import DWConv, RelativeAttention
    model = models.build("cctt_cifar")
    kinds = [type(stage[-1].mixer) for stage in model.stages]
    assert kinds == [DWConv, DWConv, RelativeAttention, RelativeAttention]


def test_coatnet_layouts_and_ablations_change_one_thing():
    from mixlib.mixers import DWConv, RelativeAttention
    for name, layout in [("ccct", "CCCT"), ("cttt", "CTTT")]:
        model = models.build(f"{name}_cifar")
        kinds = ["C" if type(stage[-1].mixer) is DWConv else "T" for stage in model.stages]
        assert "".join(kinds) == layout
        assert {type(stage[-1].mixer) for stage in model.stages} == {DWConv, RelativeAttention}
    # the ablations keep their base preset's width: only the named hyper-parameter changes
    for ablation, (base, overrides) in small.ABLATIONS.items():
        assert small.WIDTHS["cifar"][ablation] == small.WIDTHS["cifar"][base]
        rows, base_rows = small.stage_settings(f"{ablation}_cifar"), small.stage_settings(f"{base}_cifar")
        for row, base_row in zip(rows, base_rows):
            changed = {key for key in row if row[key] != base_row.get(key)}
            assert changed == {key for key in overrides if overrides[key] != base_row.get(key)} != set()
    assert not [n for n, _ in models.build("window_attention_nobias_cifar").named_parameters()
                if "bias_table" in n]


def test_stage_settings_say_what_each_cifar_mixer_is_per_stage():
    na = small.stage_settings("neighborhood_attention_cifar")
    assert [r["map"] for r in na] == [16, 8, 4, 2]
    assert [r["width"] for r in na] == [28, 56, 112, 224]
    assert [(r["kernel_size"], r["border"]) for r in na] == [(7, "clamp"), (7, "clamp"), (7, "zeros"), (7, "zeros")]
    windows = small.stage_settings("window_attention_cifar")
    assert {r["window_size"] for r in windows} == {4}
    # every second block shifted where the map holds more than one window; never on 4×4 and 2×2
    assert [r["shift_size"] for r in windows] == ["0/2", "0/2", 0, 0]
    assert [r["order"] for r in small.stage_settings("gnconv_cifar")] == [2, 3, 4, 5]
    assert [r["size"] for r in small.stage_settings("global_filter_imagenette", image_size=128)] == \
        [(32, 32), (16, 16), (8, 8), (4, 4)]
    # the table is the model: the built mixers have these hyper-parameters
    model = models.build("neighborhood_attention_cifar")
    assert [(s[-1].mixer.kernel_size, s[-1].mixer.border) for s in model.stages] == \
        [(r["kernel_size"], r["border"]) for r in na]
    with pytest.raises(ValueError, match="preset"):
        small.stage_settings("swin_t")


def _weights(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("name", [n for n in small.PRESETS if n.endswith("_cifar")])
def test_small_models_start_from_the_papers_truncated_normal(name):
    torch.manual_seed(0)
    model = models.build(name)
    layers = _weights(model, (torch.nn.Linear, torch.nn.Conv2d))
    assert layers
    for layer in layers:
        w = layer.weight
        # N(0, 0.02²) cut at ±2 in absolute terms, as timm's trunc_normal_: in effect not cut
        if w.numel() >= 2000:
            assert abs(w.std().item() - 0.02) < 0.0015, (name, w.shape, w.std())
            assert abs(w.mean().item()) < 0.002
        if layer.bias is not None:
            assert not layer.bias.any()


def test_init_torch_keeps_pytorchs_default():
    torch.manual_seed(0)
    model = models.build("dwconv_cifar", init="torch")
    fc1 = model.stages[0][0].mlp
    stds = [m.weight.std().item() for m in _weights(fc1, (torch.nn.Linear, torch.nn.Conv2d))]
    assert min(stds) > 0.05  # Kaiming-uniform at fan-in 36: 1/sqrt(3·36) = 0.096
    with pytest.raises(ValueError, match="init"):
        models.build("dwconv_cifar", init="kaiming")


def test_mixer_gains_measures_each_mixer_and_leaves_no_hook():
    dw, dynamic = mixers.build("dwconv", 8, kernel_size=3), mixers.build("ddwconv", 8,
                                                                          kernel_size=3)
    with torch.no_grad():
        dw.conv.weight.zero_()
        dw.conv.weight[:, 0, 1, 1] = 3.0  # the centre tap alone: y = 3x
        dw.conv.bias.zero_()
    net = nn.Sequential(dw, dynamic).train()
    x = torch.randn(4, 8, 6, 6)
    rows = models.mixer_gains(net, x, (mixers.DWConv, mixers.DynamicDWConv))
    assert [r["map"] for r in rows] == [6, 6]
    assert rows[0]["gain"] == pytest.approx(3.0, rel=1e-5)
    assert "spread" not in rows[0]  # one kernel for every image
    w = dynamic.aggregation_weights(3 * x)  # what the second mixer saw
    average = w.mean(0, keepdim=True)
    spread = (w - average).pow(2).mean().sqrt() / average.pow(2).mean().sqrt()
    assert rows[1]["spread"] == pytest.approx(spread.item(), rel=1e-4)
    assert rows[1]["gain"] == pytest.approx((dynamic(3 * x).pow(2).mean()
                                             / (3 * x).pow(2).mean()).sqrt().item(), rel=1e-4)
    assert models.mixer_gains(net, x, mixers.Pooling) == []
    assert not dw._forward_hooks and not dynamic._forward_hooks


@pytest.mark.parametrize("name", ["ddwconv", "idwconv"])
def test_generated_kernels_start_at_a_depthwise_kernels_scale(name):
    # the mixers' own init of their generator's last layer, which init="torch" keeps: taps of
    # mean square about 1/(3K), K = 49, where PyTorch's default gives about 1/6 (24 times more)
    torch.manual_seed(0)
    mixer = mixers.build(name, 64, kernel_size=7).train()
    taps = mixer.aggregation_weights(torch.randn(32, 64, 12, 12))
    ratio = taps.pow(2).mean().item() * 3 * 49
    assert 0.6 < ratio < 1.6, ratio


def test_small_models_take_a_layer_scale_on_both_branches_and_the_presets_have_none():
    from mixlib.layers import LayerScale
    from mixlib.models.blocks import MetaFormerBlock
    scaled = models.build("pooling_cifar", layer_scale=1e-5)
    blocks = [m for m in scaled.modules() if isinstance(m, MetaFormerBlock)]
    assert len(blocks) == 10
    gammas = [m.gamma for m in scaled.modules() if isinstance(m, LayerScale)]
    assert len(gammas) == 2 * len(blocks)  # the mixer's branch and the MLP's, in every block
    assert all(torch.equal(g, torch.full_like(g, 1e-5)) for g in gammas)  # the init leaves them
    plain = models.build("pooling_cifar")
    assert not any(isinstance(m, LayerScale) for m in plain.modules())
    x = torch.randn(2, 3, 32, 32)
    scaled.eval()
    with torch.no_grad():  # branches scaled by 1e-5: each block is nearly the identity
        block = blocks[0]
        h = torch.randn(2, block.norm1.num_features, 16, 16)
        torch.testing.assert_close(block(h), h, rtol=0, atol=1e-3)
        assert scaled(x).shape == (2, 10)


def test_small_window_attention_shifts_every_other_block():
    model = models.build("window_attention_cifar")
    shifts = [block.mixer.shift_size for block in model.stages[0] if hasattr(block, "mixer")]
    assert shifts[0] == 0 and shifts[1] > 0


# ---------------------------------------------------------------------------------------------
# the blocks' fused residual

@pytest.mark.parametrize("p", [0.0, 0.5])
@pytest.mark.parametrize("layer_scale", [None, 0.3])
def test_add_residual_is_the_unfused_sum(p, layer_scale):
    """x + drop_path(scale(branch)) in one addcmul: same values and gradients (float64,
    atol 1e-12) as the three separate steps, with the same drop mask."""
    from mixlib.layers import DropPath, LayerScale, add_residual
    scale = LayerScale(8, layer_scale).double() if layer_scale else torch.nn.Identity()
    if layer_scale:
        with torch.no_grad():
            scale.gamma.uniform_(0.5, 1.5)  # distinct per channel, so a mix-up of axes shows
    drop = DropPath(p).train()
    x = torch.randn(16, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    branch = torch.randn(16, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    results = []
    for fused in (True, False):
        torch.manual_seed(0)  # the same mask for both
        out = add_residual(x, branch, drop, scale) if fused else x + drop(scale(branch))
        grads = torch.autograd.grad((out * out).sum(), [x, branch, *scale.parameters()])
        results.append((out, grads))
    (fused, fused_grads), (plain, plain_grads) = results
    assert torch.allclose(fused, plain, atol=1e-12, rtol=0)
    for a, b in zip(fused_grads, plain_grads):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)
    if p:  # the mask did drop some samples and keep others
        dropped = (fused - x).flatten(1).abs().amax(1) == 0
        assert 0 < dropped.sum() < 16


def test_add_residual_refuses_a_scale_it_would_ignore():
    from mixlib.layers import DropPath, add_residual
    x = torch.zeros(1, 2, 3, 3)
    with pytest.raises(TypeError, match="scale must be a LayerScale"):
        add_residual(x, x, DropPath(0.0), torch.nn.BatchNorm2d(2))


def test_patch_merging_concatenates_swins_four_pixels_and_pads_odd_maps():
    """Output pixel (i, j) is the linear map of LN([x(2i,2j), x(2i+1,2j), x(2i,2j+1),
    x(2i+1,2j+1)]), zeros beyond an odd edge (float64, atol 1e-12)."""
    from mixlib.models.blocks import PatchMerging
    merge = PatchMerging(4, 6).double()
    x = torch.randn(2, 4, 7, 5, dtype=torch.float64)
    out = merge(x)
    assert out.shape == (2, 6, 4, 3)
    padded = torch.zeros(2, 4, 8, 6, dtype=torch.float64)
    padded[:, :, :7, :5] = x
    for i, j in [(0, 0), (3, 2), (1, 2)]:
        pixels = [padded[:, :, 2 * i + a, 2 * j + b] for a, b in [(0, 0), (1, 0), (0, 1), (1, 1)]]
        expected = merge.reduction(merge.norm(torch.cat(pixels, dim=1)))
        assert torch.allclose(out[:, :, i, j], expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("size", [1, 2, 8])  # 8·H·W below, at and above C = 32
def test_conv_mlp_paths_agree(size):
    """ConvMlp's two CPU paths (1×1 convolutions, matrix products) are the same function
    (float64, atol 1e-12), and the forward is whichever it prefers for the shape."""
    from mixlib.layers import ConvMlp
    mlp = ConvMlp(32, 96).double()
    x = torch.randn(3, 32, size, size, dtype=torch.float64)
    assert torch.allclose(mlp.as_conv(x), mlp.as_matmul(x), atol=1e-12, rtol=0)
    expected = mlp.as_matmul(x) if ConvMlp.prefers_matmul(x) else mlp.as_conv(x)
    assert torch.equal(mlp(x), expected)
    assert ConvMlp.prefers_matmul(x) == (8 * size * size < 32)


# ---------------------------------------------------------------------------------------------
# the dense-convolution reference network

def test_denseconv_reference_halves_the_map_in_each_group_with_dense_convolutions():
    from mixlib.models import reference
    model = reference.denseconv_cifar()
    shapes = [tuple(f.shape[1:]) for f in model.features(torch.randn(2, 3, 32, 32))]
    assert shapes == [(64, 16, 16), (256, 8, 8), (256, 4, 4)]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7 and all(c.groups == 1 and c.kernel_size == (3, 3) for c in convs)


def test_denseconv_reference_names_a_bad_width():
    from mixlib.models import reference
    with pytest.raises(ValueError, match=r"widths\[1\] must be an int >= 1, got 0"):
        reference.denseconv_cifar(widths=(64, 0, 256))


def test_reference_with_a_mixer_replaces_each_groups_second_convolution_by_a_block():
    from mixlib.mixers import DWConv
    from mixlib.models import reference
    from mixlib.models.blocks import MetaFormerBlock
    model = models.build("dwconv_refnet_cifar")
    shapes = [tuple(f.shape[1:]) for f in model.features(torch.randn(2, 3, 32, 32))]
    assert shapes == [(64, 16, 16), (256, 8, 8), (256, 4, 4)]  # the reference network's maps
    blocks = [m for m in model.modules() if isinstance(m, MetaFormerBlock)]
    assert len(blocks) == 3 and all(isinstance(b.mixer, DWConv) for b in blocks)
    dense = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(dense) == 4 and all(c.groups == 1 for c in dense)  # the stem's and each group's first
    # any mixer fits the skeleton, with its hyper-parameters fitted to each map
    attention = reference.with_mixer("window_attention")
    assert attention(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("size", [28, 36])
def test_reference_with_a_mixer_fits_its_mixers_to_the_pooled_maps(size):
    # max-pooling rounds odd sides down (28 -> 14, 7, 3): a global mixer sized for the rounded-up
    # map would not match the map it gets
    from mixlib.models import reference
    for mixer in ("relative_attention", "global_filter"):
        model = reference.with_mixer(mixer, image_size=size).eval()
        with torch.no_grad():
            maps = [tuple(f.shape[-2:]) for f in model.features(torch.randn(1, 3, size, size))]
        assert [stage[-1].mixer.size for stage in model.stages] == maps


@pytest.mark.parametrize("kwargs, message", [
    (dict(mixer="dwconvv"), "mixer must be one of .* got 'dwconvv'"),
    (dict(mixer="dwconv", widths=()), r"widths must name at least one group, got \(\)"),
    (dict(mixer="dwconv", widths=(64, 0)), r"widths\[1\] must be an int >= 1, got 0"),
    (dict(mixer="dwconv", image_size=4), "image_size must be at least 8 for 3 groups"),
])
def test_reference_with_a_mixer_names_a_bad_argument(kwargs, message):
    from mixlib.models import reference
    with pytest.raises(ValueError, match=message):
        reference.with_mixer(**kwargs)


@pytest.mark.parametrize("kwargs, said", [
    (dict(depths=(2, 0, 4, 2)), "depths[1] must be an int >= 1, got 0"),  # a stage with no mixer
    (dict(depths=(2, -1, 4, 2)), "depths[1] must be an int >= 1, got -1"),  # was an IndexError
    (dict(mlp_ratio=0), "mlp_ratio must be a finite number > 0, got 0"),  # an MLP of width 0
    (dict(drop_path_rate=-0.5), "drop_path_rate must be a finite number in [0, 1), got -0.5"),
    (dict(layer_scale=-1.0), "layer_scale must be a finite number >= 0, got -1.0"),
    (dict(layer_scale=float("nan")), "layer_scale must be a finite number")])
def test_skeleton_settings_are_checked_and_named(kwargs, said):
    with pytest.raises(ValueError, match=re.escape(said)):
        models.build("dwconv_cifar", **kwargs)


def test_layer_scale_zero_is_gammas_at_zero_not_none():
    # before, 0 was taken for "no LayerScale": the blocks did not start as the identity
    model = models.build("dwconv_cifar", layer_scale=0.0)
    gammas = [p for n, p in model.named_parameters() if n.endswith("gamma")]
    assert gammas and all(torch.equal(g, torch.zeros_like(g)) for g in gammas)


def test_coatnet_blocks_refuse_a_stride_they_cannot_take():
    from mixlib.models.blocks import CoAtTransformerBlock, MBConvBlock
    with pytest.raises(ValueError, match="stride must be 1 or 2, got 3"):
        MBConvBlock(8, 8, stride=3)
    with pytest.raises(ValueError, match="in_dim=8 and out_dim=16 must match at stride 1"):
        CoAtTransformerBlock(8, 16, nn.Identity(), stride=1)
    assert MBConvBlock(8, 16, stride=1)(torch.randn(1, 8, 4, 4)).shape == (1, 16, 4, 4)
