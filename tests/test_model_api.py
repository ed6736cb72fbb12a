"""timm's model API on mixlib's presets: num_classes and reset_classifier, forward_features and
forward_head, features_only / out_indices / feature_info, in_chans, any input size (CoAtNet
included), and the papers' initialisation by default with PyTorch's behind init="torch"."""
import sys

import pytest
import torch
import torch.nn as nn

from mixlib import models
from mixlib.models.backbone import FeatureMaps

PAPER_MODELS = ["swin_t", "dwnet_t", "ddwnet_t", "idwnet_t", "elsa_swin_t", "van_b0", "coatnet_0",
                "hornet_t_7x7", "hornet_t_gf", "gfnet_ti", "convnext_t", "poolformer_s12"]


def test_classifier_can_be_reset_and_the_head_split_off():
    torch.manual_seed(0)
    model = models.build("dwconv_cifar").double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    assert model.num_classes == 10
    feats = model.forward_features(x)
    assert feats.shape == (2, model.dims[-1], 2, 2)
    # this preset's head: a norm on the map, the mean over its pixels, the classifier
    head = model.head
    assert isinstance(head.post_norm, nn.Identity) and isinstance(head.hidden, nn.Identity)
    pooled = head.pre_norm(feats).mean((2, 3))
    torch.testing.assert_close(model.forward_head(feats, pre_logits=True), pooled, atol=1e-12, rtol=0)
    torch.testing.assert_close(model(x), head.fc(pooled), atol=1e-12, rtol=0)
    model.float()
    x = x.float()
    model.reset_classifier(5)
    assert model.num_classes == 5 and model(x).shape == (2, 5)
    model.reset_classifier(0)
    assert model.num_classes == 0 and model(x).shape == (2, model.dims[-1])
    with pytest.raises(ValueError, match="num_classes must be an int >= 0, got -1"):
        model.reset_classifier(-1)
    convnext = models.build("convnext_t")
    convnext.reset_classifier(0)
    assert isinstance(convnext.head.fc, nn.Identity)


@pytest.mark.parametrize("name, channels, reductions", [
    ("convnext_t", [96, 192, 384, 768], [4, 8, 16, 32]),
    ("coatnet_0", [96, 192, 384, 768], [4, 8, 16, 32]),
    ("dwconv_cifar", [36, 72, 144, 288], [2, 4, 8, 16]),
    ("gfnet_ti", [256], [16]),
])
def test_feature_info_gives_each_stages_channels_and_reduction(name, channels, reductions):
    model = models.build(name)
    assert model.feature_info.channels() == channels
    assert model.feature_info.reduction() == reductions


def test_features_only_returns_the_chosen_stages_maps():
    torch.manual_seed(0)
    model = models.build("swin_t", features_only=True, out_indices=(1, 3))
    assert isinstance(model, FeatureMaps) and len(model.stages) == 4
    maps = model(torch.randn(1, 3, 96, 128))
    assert [tuple(m.shape) for m in maps] == [(1, 192, 12, 16), (1, 768, 3, 4)]
    assert model.feature_info.channels() == [192, 768]
    assert model.feature_info.reduction() == [8, 32]
    shallow = models.build("convnext_t", features_only=True, out_indices=(0, -3))
    assert len(shallow.stages) == 2 and shallow.out_indices == (0, 1)
    # a classifier's weights load into it: the same keys, less the head
    full = models.build("convnext_t")
    missing = set(full.state_dict()) - set(models.build("convnext_t", features_only=True).state_dict())
    assert missing and all(k.startswith("head.") for k in missing)


@pytest.mark.parametrize("kwargs, message", [
    (dict(features_only=True, out_indices=(4,)), r"out_indices must be stage indices in \[-4, 4\), got \(4,\)"),
    (dict(features_only=True, out_indices=()), r"out_indices must be .* got \(\)"),
    (dict(out_indices=(1,)), r"out_indices=\(1,\) needs features_only=True"),
    (dict(in_chans=0), "in_chans must be an int >= 1, got 0"),
])
def test_bad_timm_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build("convnext_t", **kwargs)


@pytest.mark.parametrize("name", ["convnext_t", "poolformer_s12", "coatnet_0", "dwconv_cifar"])
def test_in_chans_adapts_the_first_convolution(name):
    torch.manual_seed(0)
    rgb = models.build(name)
    torch.manual_seed(0)
    grey = models.build(name, in_chans=1)
    first = [m for m in grey.modules() if isinstance(m, nn.Conv2d)][0]
    colour = [m for m in rgb.modules() if isinstance(m, nn.Conv2d)][0]
    assert first.in_channels == 1 and grey.in_chans == 1
    torch.testing.assert_close(first.weight, colour.weight.sum(1, keepdim=True))
    size = rgb.image_size
    assert grey(torch.randn(1, 1, size, size)).shape == (1, rgb.num_classes)
    four = models.build(name, in_chans=4)
    assert four(torch.randn(1, 4, size, size)).shape == (1, rgb.num_classes)
    with pytest.raises(ValueError, match=r"images must have shape \(B, 4, H, W\)"):
        four(torch.randn(1, 3, size, size))


@pytest.mark.parametrize("size", [160, 256, 288])
def test_coatnet_takes_other_image_sizes(size):
    torch.manual_seed(0)
    model = models.build("coatnet_0", num_classes=7).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, size, size))
    assert logits.shape == (1, 7) and torch.isfinite(logits).all()


def test_relative_attention_enlarges_its_table_for_a_larger_map():
    from mixlib.mixers import RelativeAttention
    torch.manual_seed(0)
    mixer = RelativeAttention(32, num_heads=2, size=(4, 4)).double()
    table = mixer.relative_position_bias_table.detach().T.reshape(2, 7, 7)  # [h, Δr + 3, Δc + 3]
    # a map within the table reads the table itself: query 4 = (1, 0), key 1 = (0, 1), so
    # query - key = (1, -1) (a sign flip or swapped axes would read [2, 4])
    torch.testing.assert_close(mixer.relative_bias(4, 4)[:, 4, 1], table[:, 4, 2], atol=0, rtol=0)
    # a 6×5 map needs offsets up to ±5 and ±4: the table resized (bicubic) to 11×9, then read
    # at query - key
    bias = mixer.relative_bias(6, 5)
    assert bias.shape == (2, 30, 30)
    big = nn.functional.interpolate(table[None], size=(11, 9), mode="bicubic",
                                    align_corners=False)[0]
    r, c = (t.flatten() for t in torch.meshgrid(torch.arange(6), torch.arange(5), indexing="ij"))
    torch.testing.assert_close(bias, big[:, r[:, None] - r[None] + 5, c[:, None] - c[None] + 4],
                               atol=1e-12, rtol=0)


def _weights(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_paper_models_start_from_the_papers_truncated_normal(name):
    torch.manual_seed(0)
    layers = _weights(models.build(name))
    weights = torch.cat([m.weight.detach().flatten() for m in layers])
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    assert weights.abs().max().item() < 0.02 * 6 and abs(weights.mean().item()) < 1e-3
    for m in layers:
        if m.weight.numel() >= 10_000:  # each large layer, not only the whole
            assert m.weight.std().item() == pytest.approx(0.02, rel=0.1), m
        assert m.bias is None or not m.bias.any()


def test_init_torch_keeps_pytorchs_default_for_the_paper_models():
    torch.manual_seed(0)
    model = models.build("convnext_t", init="torch")
    fc1 = model.stages[0][0].mlp.fc1
    # Kaiming-uniform (a = √5): std 1/√(3 · fan_in), 0.059 for ConvNeXt-T's first MLP
    assert fc1.weight.std().item() == pytest.approx((3 * 96) ** -0.5, rel=0.05)
    assert fc1.bias.abs().max().item() > 0
    with pytest.raises(ValueError, match="init must be one of"):
        models.build("convnext_t", init="xavier")


def test_trained_weights_build_the_preset_at_the_size_it_trained_at(tmp_path):
    """Imagenette's presets train at 128 px, not the 160 px `build` gives them: a global filter
    made for 128 px (its weights follow the map) loads, at 128 px, only if the record's
    ``image_size`` is read."""
    from mixlib.files import save_torch
    net = models.build("global_filter_imagenette", image_size=128)
    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    save_torch(tmp_path / "global_filter_imagenette.pt",
               {"model": "global_filter_imagenette", "image_size": 128, "state_dict": state})
    model = models.trained("global_filter_imagenette", folder=tmp_path)
    assert model.trained_from["image_size"] == 128
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()}
    assert model(torch.randn(1, 3, 128, 128)).shape == (1, 10)
    # a 160-px build of the same preset is another shape: the size is what made it load
    assert models.build("global_filter_imagenette").state_dict().keys() == state.keys()
    assert any(models.build("global_filter_imagenette").state_dict()[k].shape != v.shape
               for k, v in state.items())


def test_every_committed_weights_file_loads_as_its_run_trained():
    """Each file under results/weights (and the GPU column's weights-gpu) builds with `trained`
    at the image size its run trained at, and names its run; an Imagenette preset's record
    holds the size its run's result.json trained at."""
    import json
    from pathlib import Path
    from mixlib.models.small import IMAGE_SIZE
    root = Path(__file__).resolve().parents[1] / "results"
    for weights, sweep in (("weights", "sweep"), ("weights-gpu", "sweep-gpu")):
        files = sorted((root / weights).glob("*.pt"))
        assert files, weights
        for path in files:
            model = models.trained(path.stem, folder=root / weights)
            record = model.trained_from
            data = "imagenette" if path.stem.endswith("_imagenette") else "cifar10"
            result = json.loads((root / sweep / data / record["run"] / "result.json").read_text())
            assert record["test_acc"] == result["test_acc"], path
            size = result["config"].get("image_size")
            assert record.get("image_size") == size, path
            assert model.image_size == (size or IMAGE_SIZE[data.removesuffix("10")]), path


def test_trained_weights_are_found_where_the_chapters_find_the_results(tmp_path, monkeypatch):
    """Without folder=, trained() reads ``MIXLIB_WEIGHTS``, else the results folder's weights
    (``paths.results_folder``, a clone for a pip-installed mixlib): no chapter has to say where.
    A missing preset lists those there are; a missing folder is named, with where it came from;
    a name that is no small preset is refused before anything is read or fetched."""
    from mixlib.files import save_torch
    net = models.build("pooling_cifar")
    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    (tmp_path / "weights").mkdir()
    save_torch(tmp_path / "weights" / "pooling_cifar.pt", {"model": "pooling_cifar",
                                                          "state_dict": state})
    monkeypatch.delenv("MIXLIB_WEIGHTS", raising=False)
    monkeypatch.setenv("MIXLIB_RESULTS", str(tmp_path))
    model = models.trained("pooling_cifar")
    assert torch.equal(model.state_dict()["head.fc.weight"], state["head.fc.weight"].float())
    with pytest.raises(FileNotFoundError, match=r"results folder's weights/.*"
                       r"trained so far: pooling_cifar\)$"):
        models.trained("dwconv_cifar")
    with pytest.raises(FileNotFoundError, match=r"in .*, folder='.*weights' \(trained so far"):
        models.trained("dwconv_cifar", folder=tmp_path / "weights")
    monkeypatch.setenv("MIXLIB_WEIGHTS", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=r"MIXLIB_WEIGHTS='.*elsewhere' names .*elsewhere, "
                       r"which is not a folder$"):
        models.trained("pooling_cifar")
    # a name that is no small preset is refused before any folder is read
    module = sys.modules["mixlib.models.trained"]  # the package's `trained` is the function
    monkeypatch.setattr(module, "weights_folder", lambda: pytest.fail("looked"))
    with pytest.raises(ValueError, match=r"name='convnext_t' is not a small preset"):
        models.trained("convnext_t")
