"""Checkpoint conversion: each converter against the layout it converts, without downloads.

timm's families: a state dict of ``timm.create_model(..., pretrained=False)``, converted and
loaded into mixlib's preset, gives timm's outputs in float64 (1e-9)."""
import socket

import pytest
import torch

from mixlib import models

timm = pytest.importorskip("timm")


@pytest.mark.parametrize("ours_name, timm_name, size, compare", [
    ("convnext_t", "convnext_tiny", 64, "logits"),
    ("swin_t", "swin_tiny_patch4_window7_224", 224, "logits"),
    # timm's PoolFormer head normalises after pooling, the original's before: compare the maps
    ("poolformer_s12", "poolformer_s12", 64, "features"),
    ("coatnet_0", "coatnet_0_224", 224, "logits"),
])
def test_timm_checkpoints_convert_to_the_same_model(ours_name, timm_name, size, compare):
    torch.manual_seed(0)
    theirs = timm.create_model(timm_name, pretrained=False).double().eval()
    for p in theirs.parameters():  # not the initial zeros and ones: every weight must land right
        p.data.add_(0.01 * torch.randn_like(p))
    ours = models.build(ours_name).double().eval()
    ours.load_state_dict(models.convert_checkpoint(ours_name, theirs.state_dict()))
    x = torch.randn(1, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        if compare == "logits":
            torch.testing.assert_close(ours(x), theirs(x), atol=1e-9, rtol=0)
        else:
            torch.testing.assert_close(ours.forward_features(x), theirs.forward_features(x),
                                       atol=1e-9, rtol=0)


def test_a_checkpoint_wrapped_in_model_is_unwrapped_and_a_stray_key_is_named():
    state = timm.create_model("convnext_tiny").state_dict()
    assert models.convert_checkpoint("convnext_t", {"model": state}).keys() == \
        models.convert_checkpoint("convnext_t", state).keys()
    with pytest.raises(KeyError, match="'extra.weight'"):
        models.convert_checkpoint("convnext_t", {**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="name must be a preset with a converter .* got 'resnet50'"):
        models.convert_checkpoint("resnet50", state)


def test_pretrained_offline_is_a_clear_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network unreachable (blocked by the test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from mixlib.models import convert
    with pytest.raises(RuntimeError, match="could not fetch 'convnext_tiny.fb_in1k' from timm's hub"):
        convert.load_pretrained(models.build("convnext_t"), "convnext_t", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="timm's hub has no weights for 'van_b0'"):
        models.build("van_b0", pretrained=True)


# ---------------------------------------------------------------------------------------------
# The originals' layouts: a state dict with the original's key names and shapes (random values),
# converted, against a float64 forward of the original's layers written from its code with
# torch.nn.functional. Sources (read, not copied): Visual-Attention-Network/VAN-Classification
# models/van.py, raoyongming/GFNet gfnet.py, Atten4Vis/DemystifyLocalViT models/dwnet.py and
# models/idynamic.py (ce3ada052e88e459eb2bdf3af3f4831cf85a29f3), raoyongming/HorNet hornet.py
# (b92f1232c3f16f319f6e893e505261270dac3bbf), damo-cv/ELSA cls/models/elsa_swin.py and
# cls/models/elsa/elsa.py (52363286c550dfb16a146445881733a0bb01527b).

F = torch.nn.functional


def _random(shapes: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        value = 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
        if key.endswith("running_var"):
            value = 0.5 + value.abs()
        state[key] = torch.tensor(100) if key.endswith("num_batches_tracked") else value
    return state


def _van_b0_layout(num_classes=10):
    dims, depths, ratios = [32, 64, 160, 256], [3, 3, 5, 2], [8, 8, 4, 4]
    shapes = {}

    def bn(prefix, c):
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,),
                       f"{prefix}.running_mean": (c,), f"{prefix}.running_var": (c,),
                       f"{prefix}.num_batches_tracked": ()})

    def conv(prefix, o, i, k):
        shapes.update({f"{prefix}.weight": (o, i, k, k), f"{prefix}.bias": (o,)})

    for s, (c, depth, ratio) in enumerate(zip(dims, depths, ratios), start=1):
        conv(f"patch_embed{s}.proj", c, 3 if s == 1 else dims[s - 2], 7 if s == 1 else 3)
        bn(f"patch_embed{s}.norm", c)
        for j in range(depth):
            b = f"block{s}.{j}"
            bn(f"{b}.norm1", c)
            conv(f"{b}.attn.proj_1", c, c, 1)
            conv(f"{b}.attn.spatial_gating_unit.conv0", c, 1, 5)
            conv(f"{b}.attn.spatial_gating_unit.conv_spatial", c, 1, 7)
            conv(f"{b}.attn.spatial_gating_unit.conv1", c, c, 1)
            conv(f"{b}.attn.proj_2", c, c, 1)
            bn(f"{b}.norm2", c)
            conv(f"{b}.mlp.fc1", c * ratio, c, 1)
            conv(f"{b}.mlp.dwconv.dwconv", c * ratio, 1, 3)
            conv(f"{b}.mlp.fc2", c, c * ratio, 1)
            shapes.update({f"{b}.layer_scale_1": (c,), f"{b}.layer_scale_2": (c,)})
        shapes.update({f"norm{s}.weight": (c,), f"norm{s}.bias": (c,)})
    shapes.update({"head.weight": (num_classes, 256), "head.bias": (num_classes,)})
    return shapes, depths


def _van_forward(sd, x, depths):
    """VAN's forward in eval mode, from van.py's layers."""
    def bn(p, x):
        return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                            sd[f"{p}.bias"], eps=1e-5)

    def conv(p, x, **kw):
        return F.conv2d(x, sd[f"{p}.weight"], sd[f"{p}.bias"], **kw)

    for s, depth in enumerate(depths, start=1):
        k = 7 if s == 1 else 3
        x = bn(f"patch_embed{s}.norm", conv(f"patch_embed{s}.proj", x, stride=4 if s == 1 else 2,
                                            padding=k // 2))
        C = x.shape[1]
        for j in range(depth):
            b = f"block{s}.{j}"
            y = bn(f"{b}.norm1", x)
            u = F.gelu(conv(f"{b}.attn.proj_1", y))
            a = conv(f"{b}.attn.spatial_gating_unit.conv0", u, padding=2, groups=C)
            a = conv(f"{b}.attn.spatial_gating_unit.conv_spatial", a, padding=9, dilation=3, groups=C)
            a = conv(f"{b}.attn.spatial_gating_unit.conv1", a)
            y = conv(f"{b}.attn.proj_2", u * a) + y  # the attention's own shortcut
            x = x + sd[f"{b}.layer_scale_1"].view(1, -1, 1, 1) * y
            y = conv(f"{b}.mlp.fc1", bn(f"{b}.norm2", x))
            y = conv(f"{b}.mlp.fc2", F.gelu(conv(f"{b}.mlp.dwconv.dwconv", y, padding=1,
                                                 groups=y.shape[1])))
            x = x + sd[f"{b}.layer_scale_2"].view(1, -1, 1, 1) * y
        t = F.layer_norm(x.flatten(2).transpose(1, 2), (C,), sd[f"norm{s}.weight"],
                         sd[f"norm{s}.bias"], eps=1e-6)
        x = t.transpose(1, 2).reshape(x.shape)
    return F.linear(x.mean((2, 3)), sd["head.weight"], sd["head.bias"])


def test_van_original_layout_converts_to_the_same_model():
    shapes, depths = _van_b0_layout()
    original = _random(shapes, seed=1)
    ours = models.build("van_b0", num_classes=10).double().eval()
    ours.load_state_dict(models.convert_checkpoint("van_b0", original))
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), _van_forward(original, x, depths), atol=1e-10, rtol=0)


def _gfnet_forward(sd, x, depth=12):
    """GFNet's forward, from gfnet.py's layers (tokens (B, N, C))."""
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=16)
    B, C, a, b = t.shape
    t = t.flatten(2).transpose(1, 2) + sd["pos_embed"]
    for i in range(depth):
        p = f"blocks.{i}"
        y = F.layer_norm(t, (C,), sd[f"{p}.norm1.weight"], sd[f"{p}.norm1.bias"], eps=1e-6)
        y = torch.fft.rfft2(y.view(B, a, b, C), dim=(1, 2), norm="ortho")
        y = y * torch.view_as_complex(sd[f"{p}.filter.complex_weight"].contiguous())
        y = torch.fft.irfft2(y, s=(a, b), dim=(1, 2), norm="ortho").reshape(B, -1, C)
        y = F.layer_norm(y, (C,), sd[f"{p}.norm2.weight"], sd[f"{p}.norm2.bias"], eps=1e-6)
        y = F.linear(F.gelu(F.linear(y, sd[f"{p}.mlp.fc1.weight"], sd[f"{p}.mlp.fc1.bias"])),
                     sd[f"{p}.mlp.fc2.weight"], sd[f"{p}.mlp.fc2.bias"])
        t = t + y
    t = F.layer_norm(t, (C,), sd["norm.weight"], sd["norm.bias"], eps=1e-6).mean(1)
    return F.linear(t, sd["head.weight"], sd["head.bias"])


def test_gfnet_original_layout_converts_to_the_same_model():
    C, side = 256, 14
    shapes = {"patch_embed.proj.weight": (C, 3, 16, 16), "patch_embed.proj.bias": (C,),
              "pos_embed": (1, side * side, C), "norm.weight": (C,), "norm.bias": (C,),
              "head.weight": (10, C), "head.bias": (10,)}
    for i in range(12):
        p = f"blocks.{i}"
        shapes.update({f"{p}.norm1.weight": (C,), f"{p}.norm1.bias": (C,),
                       f"{p}.filter.complex_weight": (side, side // 2 + 1, C, 2),
                       f"{p}.norm2.weight": (C,), f"{p}.norm2.bias": (C,),
                       f"{p}.mlp.fc1.weight": (4 * C, C), f"{p}.mlp.fc1.bias": (4 * C,),
                       f"{p}.mlp.fc2.weight": (C, 4 * C), f"{p}.mlp.fc2.bias": (C,)})
    original = _random(shapes, seed=2)
    ours = models.build("gfnet_ti", num_classes=10).double().eval()
    ours.load_state_dict(models.convert_checkpoint("gfnet_ti", original))
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), _gfnet_forward(original, x), atol=1e-10, rtol=0)


def _swin_skeleton_layout(num_classes):
    """The keys of Swin-T's skeleton, which DWNet and ELSA-Swin keep: patch_embed, the patch
    merging at the end of layers 0-2 (layers.{i}.downsample), norm and head."""
    shapes = {"patch_embed.proj.weight": (96, 3, 4, 4), "patch_embed.proj.bias": (96,),
              "patch_embed.norm.weight": (96,), "patch_embed.norm.bias": (96,),
              "norm.weight": (768,), "norm.bias": (768,), "head.weight": (num_classes, 768),
              "head.bias": (num_classes,)}
    for i, c in enumerate([96, 192, 384]):
        shapes.update({f"layers.{i}.downsample.norm.weight": (4 * c,),
                       f"layers.{i}.downsample.norm.bias": (4 * c,),
                       f"layers.{i}.downsample.reduction.weight": (2 * c, 4 * c)})
    return shapes


def _dwnet_layout(dynamic: bool, num_classes=10, inhomogeneous=False):
    """DemystifyLocalViT's DWNet-T keys and shapes (models/dwnet.py, embed_dim 96, depths
    2-2-6-2, window 7, mlp_ratio 4; dynamic: reduction 4; inhomogeneous: models/idynamic.py's
    IDynamicDWConv at ce3ada0, conv1 = Sequential(conv C -> C/4 with bias, BN, ReLU), conv2 =
    Sequential(conv C/4 -> 32·49), 32 groups: INHOMO_HEADS [3, 6, 12, 24] channels per group in
    configs/i_dynamic_dwnet_tiny_patch4_window7_224.yaml)."""
    shapes = _swin_skeleton_layout(num_classes)

    def bn(p, c):
        shapes.update({f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,),
                       f"{p}.running_var": (c,), f"{p}.num_batches_tracked": ()})

    for i, depth in enumerate([2, 2, 6, 2]):
        c = 96 * 2 ** i
        for j in range(depth):
            b = f"layers.{i}.blocks.{j}"
            shapes[f"{b}.attn2conv.conv0.weight"] = (c, c, 1, 1)
            bn(f"{b}.attn2conv.bn0", c)
            if inhomogeneous:
                shapes.update({f"{b}.attn2conv.conv.conv1.0.weight": (c // 4, c, 1, 1),
                               f"{b}.attn2conv.conv.conv1.0.bias": (c // 4,)})
                bn(f"{b}.attn2conv.conv.conv1.1", c // 4)
                shapes.update({f"{b}.attn2conv.conv.conv2.0.weight": (32 * 49, c // 4, 1, 1),
                               f"{b}.attn2conv.conv.conv2.0.bias": (32 * 49,)})
            elif dynamic:
                shapes[f"{b}.attn2conv.conv.conv1.weight"] = (c // 4, c, 1, 1)
                bn(f"{b}.attn2conv.conv.bn", c // 4)
                shapes.update({f"{b}.attn2conv.conv.conv2.weight": (c * 49, c // 4, 1, 1),
                               f"{b}.attn2conv.conv.conv2.bias": (c * 49,),
                               f"{b}.attn2conv.conv.bias": (c,)})
            else:
                shapes.update({f"{b}.attn2conv.conv.weight": (c, 1, 7, 7),
                               f"{b}.attn2conv.conv.bias": (c,)})
            bn(f"{b}.attn2conv.bn", c)
            shapes[f"{b}.attn2conv.conv2.weight"] = (c, c, 1, 1)
            bn(f"{b}.attn2conv.bn2", c)
            bn(f"{b}.bn", c)
            shapes.update({f"{b}.mlp.fc1.weight": (4 * c, c), f"{b}.mlp.fc1.bias": (4 * c,),
                           f"{b}.mlp.fc2.weight": (c, 4 * c), f"{b}.mlp.fc2.bias": (c,)})
    return shapes


def _dwnet_forward(sd, x, dynamic: bool, inhomogeneous=False):
    """DWNet's forward in eval mode, from dwnet.py's layers, on (B, C, H, W) maps."""
    def bn(p, x):
        return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                            sd[f"{p}.bias"], eps=1e-5)

    def ln(p, x):  # over the last axis
        return F.layer_norm(x, x.shape[-1:], sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-5)

    x = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=4)
    x = ln("patch_embed.norm", x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    for i, depth in enumerate([2, 2, 6, 2]):
        for j in range(depth):
            b = f"layers.{i}.blocks.{j}.attn2conv"
            B, C, H, W = x.shape
            y = F.relu(bn(f"{b}.bn0", F.conv2d(x, sd[f"{b}.conv0.weight"])))
            if inhomogeneous:  # idynamic.py's kernel: y[n, c, h, w] = Σ W[n, c // (C/G), kh, kw, h, w]
                g = F.conv2d(y, sd[f"{b}.conv.conv1.0.weight"], sd[f"{b}.conv.conv1.0.bias"])
                g = F.conv2d(F.relu(bn(f"{b}.conv.conv1.1", g)), sd[f"{b}.conv.conv2.0.weight"],
                             sd[f"{b}.conv.conv2.0.bias"]).view(B, 32, 1, 49, H, W)
                # · x[n, c, h - 3 + kh, w - 3 + kw], zero outside
                y = (F.unfold(y, 7, padding=3).view(B, 32, C // 32, 49, H, W) * g).sum(3).view(B, C, H, W)
            elif dynamic:
                g = F.conv2d(y.mean((2, 3), keepdim=True), sd[f"{b}.conv.conv1.weight"])
                g = F.conv2d(F.relu(bn(f"{b}.conv.bn", g)), sd[f"{b}.conv.conv2.weight"],
                             sd[f"{b}.conv.conv2.bias"])
                y = F.conv2d(y.reshape(1, B * C, H, W), g.view(B * C, 1, 7, 7),
                             sd[f"{b}.conv.bias"].repeat(B), padding=3, groups=B * C).view(B, C, H, W)
            else:
                y = F.conv2d(y, sd[f"{b}.conv.weight"], sd[f"{b}.conv.bias"], padding=3, groups=C)
            y = F.relu(bn(f"{b}.bn", y))
            x = x + bn(f"{b}.bn2", F.conv2d(y, sd[f"{b}.conv2.weight"]))
            p = f"layers.{i}.blocks.{j}"
            t = bn(f"{p}.bn", x).permute(0, 2, 3, 1)
            t = F.linear(F.gelu(F.linear(t, sd[f"{p}.mlp.fc1.weight"], sd[f"{p}.mlp.fc1.bias"])),
                         sd[f"{p}.mlp.fc2.weight"], sd[f"{p}.mlp.fc2.bias"])
            x = x + t.permute(0, 3, 1, 2)
        if i < 3:
            t = x.permute(0, 2, 3, 1)
            t = torch.cat([t[:, 0::2, 0::2], t[:, 1::2, 0::2], t[:, 0::2, 1::2], t[:, 1::2, 1::2]], -1)
            t = F.linear(ln(f"layers.{i}.downsample.norm", t), sd[f"layers.{i}.downsample.reduction.weight"])
            x = t.permute(0, 3, 1, 2)
    t = ln("norm", x.permute(0, 2, 3, 1)).mean((1, 2))
    return F.linear(t, sd["head.weight"], sd["head.bias"])


@pytest.mark.parametrize("name, dynamic", [("dwnet_t", False), ("ddwnet_t", True)])
def test_dwnet_original_layout_converts_to_the_same_model(name, dynamic):
    original = _random(_dwnet_layout(dynamic), seed=3)
    ours = models.build(name, num_classes=10).double().eval()
    ours.load_state_dict(models.convert_checkpoint(name, original))
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), _dwnet_forward(original, x, dynamic), atol=1e-10, rtol=0)


def test_idwnet_original_layout_converts_to_the_same_model():
    original = _random(_dwnet_layout(True, inhomogeneous=True), seed=4)
    ours = models.build("idwnet_t", num_classes=10).double().eval()
    ours.load_state_dict(models.convert_checkpoint("idwnet_t", original))
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), _dwnet_forward(original, x, True, inhomogeneous=True),
                                   atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="use dwnet_t or ddwnet_t"):
        models.convert_checkpoint("idwnet_t", _random(_dwnet_layout(True), seed=4))
    for name in ("dwnet_t", "ddwnet_t"):  # and the other way round: named, not half-renamed
        with pytest.raises(ValueError, match="use idwnet_t"):
            models.convert_checkpoint(name, original)


# raoyongming/HorNet hornet.py (b92f123, its last change; 5e55273 has the same layers): HorNet-T,
# base_dim 64, depths 2-3-18-2, gnconv orders 2-5 with s = 1/3; HorNet-T-GF's stages 3 and 4 use
# GlobalLocalFilter(sum(dims), h=14, w=8) and (h=7, w=4).
HORNET_DIMS, HORNET_DEPTHS = [64, 128, 256, 512], [2, 3, 18, 2]


def _gnconv_dims(c, order):
    return [c // 2 ** i for i in range(order)][::-1]


def _hornet_layout(gf: bool, num_classes=10):
    shapes = {"downsample_layers.0.0.weight": (64, 3, 4, 4), "downsample_layers.0.0.bias": (64,),
              "downsample_layers.0.1.weight": (64,), "downsample_layers.0.1.bias": (64,)}
    for i, (c, depth) in enumerate(zip(HORNET_DIMS, HORNET_DEPTHS)):
        if i:
            d = f"downsample_layers.{i}"
            shapes.update({f"{d}.0.weight": (c // 2,), f"{d}.0.bias": (c // 2,),
                           f"{d}.1.weight": (c, c // 2, 2, 2), f"{d}.1.bias": (c,)})
        dims = _gnconv_dims(c, i + 2)
        for j in range(depth):
            b = f"stages.{i}.{j}"
            g = f"{b}.gnconv"
            shapes.update({f"{b}.norm1.weight": (c,), f"{b}.norm1.bias": (c,), f"{b}.gamma1": (c,),
                           f"{g}.proj_in.weight": (2 * c, c, 1, 1), f"{g}.proj_in.bias": (2 * c,),
                           f"{g}.proj_out.weight": (c, c, 1, 1), f"{g}.proj_out.bias": (c,),
                           f"{b}.norm2.weight": (c,), f"{b}.norm2.bias": (c,), f"{b}.gamma2": (c,),
                           f"{b}.pwconv1.weight": (4 * c, c), f"{b}.pwconv1.bias": (4 * c,),
                           f"{b}.pwconv2.weight": (c, 4 * c), f"{b}.pwconv2.bias": (c,)})
            for k in range(len(dims) - 1):
                shapes.update({f"{g}.pws.{k}.weight": (dims[k + 1], dims[k], 1, 1),
                               f"{g}.pws.{k}.bias": (dims[k + 1],)})
            n = sum(dims)
            if gf and i >= 2:
                h = 14 if i == 2 else 7
                shapes.update({f"{g}.dwconv.dw.weight": (n // 2, 1, 3, 3),
                               f"{g}.dwconv.complex_weight": (n // 2, h, h // 2 + 1, 2),
                               f"{g}.dwconv.pre_norm.weight": (n,), f"{g}.dwconv.pre_norm.bias": (n,),
                               f"{g}.dwconv.post_norm.weight": (n,), f"{g}.dwconv.post_norm.bias": (n,)})
            else:
                shapes.update({f"{g}.dwconv.weight": (n, 1, 7, 7), f"{g}.dwconv.bias": (n,)})
    shapes.update({"norm.weight": (512,), "norm.bias": (512,), "head.weight": (num_classes, 512),
                   "head.bias": (num_classes,)})
    return shapes


def _hornet_forward(sd, x, gf: bool):
    """HorNet's forward, from hornet.py's layers (its LayerNorm in both data formats). The
    original casts the global filter's input to float32; here it stays in float64."""
    def ln_cf(p, x):  # channels_first
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            eps=1e-6).permute(0, 3, 1, 2)

    def conv(p, x, **kw):
        return F.conv2d(x, sd[f"{p}.weight"], sd.get(f"{p}.bias"), **kw)

    for i, depth in enumerate(HORNET_DEPTHS):
        d = f"downsample_layers.{i}"
        if i == 0:
            x = ln_cf(f"{d}.1", conv(f"{d}.0", x, stride=4))
        else:
            x = conv(f"{d}.1", ln_cf(f"{d}.0", x), stride=2)
        C = x.shape[1]
        dims = _gnconv_dims(C, i + 2)
        for j in range(depth):
            b, g = f"stages.{i}.{j}", f"stages.{i}.{j}.gnconv"
            pwa, abc = torch.split(conv(f"{g}.proj_in", ln_cf(f"{b}.norm1", x)), (dims[0], sum(dims)), 1)
            if gf and i >= 2:  # GlobalLocalFilter
                abc = ln_cf(f"{g}.dwconv.pre_norm", abc)
                x1, x2 = torch.chunk(abc, 2, dim=1)
                x1 = F.conv2d(x1, sd[f"{g}.dwconv.dw.weight"], padding=1, groups=x1.shape[1])
                a, w = x2.shape[-2:]
                spectrum = torch.fft.rfft2(x2, dim=(2, 3), norm="ortho")
                spectrum = spectrum * torch.view_as_complex(sd[f"{g}.dwconv.complex_weight"].contiguous())
                x2 = torch.fft.irfft2(spectrum, s=(a, w), dim=(2, 3), norm="ortho")
                abc = torch.cat([x1.unsqueeze(2), x2.unsqueeze(2)], dim=2).reshape(abc.shape)
                dw_abc = ln_cf(f"{g}.dwconv.post_norm", abc) / 3
            else:
                dw_abc = conv(f"{g}.dwconv", abc, padding=3, groups=abc.shape[1]) / 3
            dw_list = torch.split(dw_abc, dims, dim=1)
            y = pwa * dw_list[0]
            for k in range(len(dims) - 1):
                y = conv(f"{g}.pws.{k}", y) * dw_list[k + 1]
            x = x + sd[f"{b}.gamma1"].view(-1, 1, 1) * conv(f"{g}.proj_out", y)
            t = F.layer_norm(x.permute(0, 2, 3, 1), (C,), sd[f"{b}.norm2.weight"], sd[f"{b}.norm2.bias"],
                             eps=1e-6)
            t = F.linear(F.gelu(F.linear(t, sd[f"{b}.pwconv1.weight"], sd[f"{b}.pwconv1.bias"])),
                         sd[f"{b}.pwconv2.weight"], sd[f"{b}.pwconv2.bias"])
            x = x + (sd[f"{b}.gamma2"] * t).permute(0, 3, 1, 2)
    t = F.layer_norm(x.mean((-2, -1)), (x.shape[1],), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    return F.linear(t, sd["head.weight"], sd["head.bias"])


# HorNet-GF at 224 px, where its filters (14×8 and 7×4 spectra) fit the maps without interpolation
@pytest.mark.parametrize("name, gf, size", [("hornet_t_7x7", False, 64), ("hornet_t_gf", True, 224)])
def test_hornet_original_layout_converts_to_the_same_model(name, gf, size):
    original = _random(_hornet_layout(gf), seed=5)
    ours = models.build(name, num_classes=10).double().eval()
    ours.load_state_dict(models.convert_checkpoint(name, original))
    x = torch.randn(1, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), _hornet_forward(original, x, gf), atol=1e-10, rtol=0)


# damo-cv/ELSA at 52363286 (cls/models/elsa_swin.py, cls/models/elsa/elsa.py): ELSA-Swin-T,
# embed 96, depths 2-2-6-2, heads 3-6-12-24, elsa_kernel 7, group_width 4, λ = 0, γ = 1,
# qk_scale 1, qkv_bias; ELSA blocks in layers 0-2, Swin blocks in layer 3, whose WindowAttention
# reads (v, q, k) from pre_proj and its bias rb (heads, 169) through a key - query index.
ELSA_DIMS, ELSA_DEPTHS, ELSA_HEADS = [96, 192, 384, 768], [2, 2, 6, 2], [3, 6, 12, 24]


def _elsa_key_minus_query_index(M=7):
    """elsa_swin.py's relative_id: (Δr + M - 1)(2M - 1) + Δc + M - 1 with Δ = key - query."""
    coords = torch.stack(torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")).flatten(1)
    rel = coords[:, None, :] - coords[:, :, None]  # [:, query, key] = key - query
    return ((rel[0] + M - 1) * (2 * M - 1) + rel[1] + M - 1).view(-1)


def _elsa_swin_layout(num_classes=10):
    shapes = _swin_skeleton_layout(num_classes)
    for i, (c, depth, heads) in enumerate(zip(ELSA_DIMS, ELSA_DEPTHS, ELSA_HEADS)):
        qk = c // 3 * 2  # a multiple of group_width 4 in every stage
        for j in range(depth):
            b = f"layers.{i}.blocks.{j}"
            shapes.update({f"{b}.norm1.weight": (c,), f"{b}.norm1.bias": (c,),
                           f"{b}.attn.post_proj.weight": (c, c), f"{b}.attn.post_proj.bias": (c,),
                           f"{b}.norm2.weight": (c,), f"{b}.norm2.bias": (c,),
                           f"{b}.mlp.fc1.weight": (4 * c, c), f"{b}.mlp.fc1.bias": (4 * c,),
                           f"{b}.mlp.fc2.weight": (c, 4 * c), f"{b}.mlp.fc2.bias": (c,)})
            if i < 3:
                shapes.update({f"{b}.attn.pre_proj.weight": (2 * qk + c, c, 1, 1),
                               f"{b}.attn.pre_proj.bias": (2 * qk + c,),
                               f"{b}.attn.attn.0.weight": (qk, 4, 7, 7), f"{b}.attn.attn.0.bias": (qk,),
                               f"{b}.attn.attn.2.weight": (49 * heads, qk, 1, 1),
                               f"{b}.attn.attn.2.bias": (49 * heads,),
                               f"{b}.attn.ghost_head": (1, c, 7, 7)})
            else:
                shapes.update({f"{b}.attn.rb": (heads, 169), f"{b}.attn.relative_id": (49 * 49,),
                               f"{b}.attn.pre_proj.weight": (3 * c, c), f"{b}.attn.pre_proj.bias": (3 * c,)})
    state = _random(shapes, seed=6)
    for key in [k for k in state if k.endswith("relative_id")]:
        state[key] = _elsa_key_minus_query_index()
    return state


def _elsa_swin_forward(sd, x):
    """ELSA-Swin's forward at 224 px, from elsa_swin.py's and elsa.py's layers (elsa_op's unfold
    path), on (B, H, W, C) tokens; layer 3 works on a 7×7 map: one window, no shift."""
    def ln(p, t):
        return F.layer_norm(t, t.shape[-1:], sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-5)

    def linear(p, t):
        return F.linear(t, sd[f"{p}.weight"], sd.get(f"{p}.bias"))

    x = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=4)
    x = ln("patch_embed.norm", x.permute(0, 2, 3, 1))  # (B, H, W, C)
    for i, (depth, G) in enumerate(zip(ELSA_DEPTHS, ELSA_HEADS)):
        B, H, W, C = x.shape
        for j in range(depth):
            b = f"layers.{i}.blocks.{j}"
            y = ln(f"{b}.norm1", x)
            if i < 3:  # ELSA
                qkv = F.conv2d(y.permute(0, 3, 1, 2), sd[f"{b}.attn.pre_proj.weight"],
                               sd[f"{b}.attn.pre_proj.bias"])
                qk = C // 3 * 2
                q, k, v = torch.split(qkv, (qk, qk, C), dim=1)
                h = F.conv2d(q * k * 1.0, sd[f"{b}.attn.attn.0.weight"], sd[f"{b}.attn.attn.0.bias"],
                             padding=3, groups=qk // 4)
                h = F.conv2d(F.gelu(h), sd[f"{b}.attn.attn.2.weight"], sd[f"{b}.attn.attn.2.bias"])
                h = h.reshape(B * G, 49, H, W).softmax(1).reshape(B * G, 1, 49, H * W)
                ghost_add = sd[f"{b}.attn.ghost_head"].expand(B, C, 7, 7).reshape(B * G, C // G, 49, 1)
                v = F.unfold(v.reshape(B * G, C // G, H, W), 7, padding=3).reshape(B * G, C // G, 49, H * W)
                y = (v * (h + ghost_add)).sum(2).reshape(B, C, H, W)
                y = linear(f"{b}.attn.post_proj", y.permute(0, 2, 3, 1))
            else:  # Swin's WindowAttention with (v, q, k) and the key - query bias
                N = H * W
                feat = linear(f"{b}.attn.pre_proj", y.reshape(B, N, C))
                feat = feat.reshape(B, N, 3, G, C // G).permute(2, 0, 3, 1, 4)
                v, q, k = feat[0], feat[1], feat[2]
                bias = sd[f"{b}.attn.rb"][:, sd[f"{b}.attn.relative_id"]].reshape(1, G, N, N)
                attn = (q @ k.transpose(-2, -1) * (C // G) ** -0.5 + bias).softmax(-1)
                y = linear(f"{b}.attn.post_proj", (attn @ v).transpose(1, 2).reshape(B, H, W, C))
            x = x + y
            x = x + linear(f"{b}.mlp.fc2", F.gelu(linear(f"{b}.mlp.fc1", ln(f"{b}.norm2", x))))
        if i < 3:
            x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
            x = linear(f"layers.{i}.downsample.reduction", ln(f"layers.{i}.downsample.norm", x))
    return linear("head", ln("norm", x).mean((1, 2)))


def test_elsa_swin_original_layout_converts_to_the_same_model():
    original = _elsa_swin_layout()
    converted = models.convert_checkpoint("elsa_swin_t", original)
    ours = models.build("elsa_swin_t", num_classes=10).double().eval()
    ours.load_state_dict(converted)
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), _elsa_swin_forward(original, x), atol=1e-10, rtol=0)


def test_elsa_swin_stage_4_is_reordered_not_copied():
    """Where each of the last stage's tensors lands: q, k, v from rows C:2C, 2C:3C, 0:C of
    pre_proj; the bias of query i and key j, which the original reads at rb[h, f(j - i)], at
    row f(i - j) of mixlib's table."""
    original = _elsa_swin_layout()
    state = models.convert_checkpoint("elsa_swin_t", original)
    C, W = 768, original["layers.3.blocks.0.attn.pre_proj.weight"]
    torch.testing.assert_close(state["stages.3.1.mixer.qkv.weight"],
                               torch.cat([W[C:2 * C], W[2 * C:], W[:C]]), atol=0, rtol=0)
    from mixlib.mixers.attention import lookup_bias, swin_relative_index
    ours = lookup_bias(state["stages.3.1.mixer.relative_position_bias_table"], swin_relative_index(7, 7))
    rb, index = original["layers.3.blocks.0.attn.rb"], original["layers.3.blocks.0.attn.relative_id"]
    torch.testing.assert_close(ours, rb[:, index].view(24, 49, 49), atol=0, rtol=0)
    assert not torch.equal(ours, rb[:, index].view(24, 49, 49).transpose(1, 2))  # the sign matters


def test_elsa_swin_with_a_ghost_multiplier_is_refused_by_name():
    """ELSA with λ ≠ 0 stores (ghost_mul, ghost_add) stacked, (2, 1, C, k, k): elsa_swin_t has
    no multiplier to put it in, so the converter names the key instead of dropping half of it."""
    original = _elsa_swin_layout()
    original["layers.0.blocks.0.attn.ghost_head"] = torch.zeros(2, 1, 96, 7, 7, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"stages\.0\.0\.mixer\.ghost_add: .* got \(2, 1, 96, 7, 7\)"):
        models.convert_checkpoint("elsa_swin_t", original)
