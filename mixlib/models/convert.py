"""Checkpoint conversion: the released weights of the papers' models, in mixlib's layout.

    from mixlib import models
    state = models.convert_checkpoint("convnext_t", timm_state_dict)
    net = models.build("convnext_t"); net.load_state_dict(state)
    net = models.build("convnext_t", pretrained=True)     # through timm's hub (needs the network)

One function per family, each a list of renaming rules, reshapes (a Linear's (out, in) weight
is a 1×1 convolution's (out, in, 1, 1) in mixlib) and, where the layouts differ, a permutation;
``convert_checkpoint(name, state_dict)`` picks the function for preset `name`. What each was
tested against (tests/test_convert.py):

- convnext_t: timm's convnext_tiny; outputs equal timm's in float64.
- swin_t: timm's swin_tiny_patch4_window7_224; outputs equal timm's in float64.
- poolformer_s12: timm's poolformer_s12; stage maps equal (timm's head norms after pooling).
- coatnet_0: timm's coatnet_0_224; outputs equal timm's in float64.
- van_b0: Visual-Attention-Network/VAN-Classification (van.py); outputs equal, in float64, a
  forward of the original's layers (written in the test) on a state dict with the original's
  key names and shapes.
- gfnet_ti: raoyongming/GFNet (gfnet.py); the same, for GFNet's token layout.
- dwnet_t, ddwnet_t: Atten4Vis/DemystifyLocalViT (models/dwnet.py); the same, DW and D-DW.
- idwnet_t: the same repository's I-D-DW blocks (models/idynamic.py, IDynamicDWConv); the same,
  with the per-pixel aggregation written as the CuPy kernel indexes it.
- hornet_t_7x7, hornet_t_gf: raoyongming/HorNet (hornet.py: gnconv, GlobalLocalFilter); the
  same, GF at 224 px, where its filters need no interpolation.
- elsa_swin_t: damo-cv/ELSA (cls/models/elsa_swin.py, cls/models/elsa/elsa.py); the same, at
  224 px, for its ELSA stages 1-3 and its Swin stage 4, whose (v, q, k) projection and
  key - query bias table are reordered, not copied.

Keys of the source that hold no weights of mixlib's model (timm's relative position indices and
attention masks, buffers it recomputes) are dropped; any other key left over, or a key of the
model that the checkpoint lacks, is an error that names it.
"""
from __future__ import annotations

import re
from typing import Callable

import torch

__all__ = ["convert_checkpoint", "converters", "load_pretrained", "PRETRAINED"]

# the presets whose released weights timm's hub serves, under timm's name
PRETRAINED = {"convnext_t": "convnext_tiny.fb_in1k",
              "swin_t": "swin_tiny_patch4_window7_224.ms_in1k",
              "poolformer_s12": "poolformer_s12.sail_in1k"}

Rules = list[tuple[str, str | Callable[[re.Match], str]]]


def _rename(state_dict: dict, rules: Rules, *, drop: tuple[str, ...] = ()) -> dict:
    """Apply the first matching (pattern, replacement) of `rules` to every key; keys that match
    a pattern in `drop` are left out; a key no rule matches is an error."""
    out = {}
    for key, value in state_dict.items():
        if any(re.search(pattern, key) for pattern in drop):
            continue
        for pattern, replacement in rules:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, replacement, key)] = value
                break
        else:
            raise KeyError(f"state_dict key {key!r} has no place in mixlib's model")
    return out


def _as_1x1(state_dict: dict, pattern: str) -> dict:
    """Linear weights (out, in) -> 1×1 convolution weights (out, in, 1, 1) where `pattern`
    matches the key."""
    return {k: v[:, :, None, None] if re.search(pattern, k) and v.dim() == 2 else v
            for k, v in state_dict.items()}


def _in_stage(stage: int, block: int, rest: str) -> str:
    """Block `block` of stage `stage` + rest, in mixlib's layout, which keeps a stage's
    downsampling as the stage's first module (timm: a named one beside its blocks): block B of
    stage S > 0 is module B + 1."""
    return f"stages.{stage}.{block + (1 if stage > 0 else 0)}.{rest}"


def _blocks(pattern: str, names: dict[str, str], *, stage_offset: int = 0):
    """A rule for the blocks of a stage: `pattern` captures (stage, block, rest); each prefix of
    rest in `names` is renamed; the block lands where `_in_stage` puts it."""
    def replace(m: re.Match) -> str:
        rest = m[3]
        for theirs, ours in names.items():
            if rest.startswith(theirs):
                rest = ours + rest[len(theirs):]
        return _in_stage(int(m[1]) + stage_offset, int(m[2]), rest)
    return pattern, replace


def _timm_stages(stem: Rules, downsample: str, names: dict[str, str], head_norm: str) -> Rules:
    """The rules of timm's stage layout (stages.S.downsample.<downsample>*, stages.S.blocks.B.*,
    head.norm, head.fc) after the `stem` rules; `names` renames inside the blocks."""
    return [*stem,
            (rf"stages\.(\d+)\.downsample\.{downsample}(.*)", r"stages.\1.0.\2"),
            _blocks(r"stages\.(\d+)\.blocks\.(\d+)\.(.*)", names),
            (r"head\.norm\.(.*)", rf"head.{head_norm}.\1"),
            (r"head\.fc\.(.*)", r"head.fc.\1")]


def convnext_from_timm(state_dict: dict) -> dict:
    """timm's ConvNeXt (convnext_tiny; timm's own filter converts facebookresearch/ConvNeXt's
    release into this layout)."""
    rules = _timm_stages([(r"stem\.(.*)", r"stem.\1")], "",
                         {"gamma": "scale.gamma", "conv_dw.": "mixer.conv."}, "post_norm")
    return _as_1x1(_rename(state_dict, rules), r"\.mlp\.fc[12]\.weight$")


def swin_from_timm(state_dict: dict) -> dict:
    """timm's Swin Transformer (swin_tiny_patch4_window7_224, whose tables and projections are
    those of microsoft/Swin-Transformer's release under other names)."""
    rules: Rules = [
        (r"patch_embed\.proj\.(.*)", r"stem.0.\1"),
        (r"patch_embed\.norm\.(.*)", r"stem.1.\1"),
        (r"layers\.(\d+)\.downsample\.(.*)", r"stages.\1.0.\2"),
        _blocks(r"layers\.(\d+)\.blocks\.(\d+)\.(.*)", {"attn.": "mixer."}),
        (r"norm\.(.*)", r"head.pre_norm.\1"),
        (r"head\.fc\.(.*)", r"head.fc.\1"),
    ]
    state = _rename(state_dict, rules, drop=(r"relative_position_index$", r"attn_mask$"))
    return _as_1x1(state, r"\.mlp\.fc[12]\.weight$")


def poolformer_from_timm(state_dict: dict) -> dict:
    """timm's PoolFormer (poolformer_s12, timm.models.metaformer). timm's head normalises the
    pooled vector (LayerNorm) where sail-sg/poolformer normalises the map before pooling
    (GroupNorm), as mixlib does: the same parameters, so the stage maps agree and the logits
    differ by that norm."""
    rules = _timm_stages([(r"stem\.conv\.(.*)", r"stem.\1")], r"conv\.",
                         {"layer_scale1.scale": "scale1.gamma", "layer_scale2.scale": "scale2.gamma"},
                         "pre_norm")
    return _rename(state_dict, rules)


COATNET_HEAD_WIDTH = 32  # CoAtNet's attention: 32 channels per head


def coatnet_from_timm(state_dict: dict) -> dict:
    """timm's CoAtNet-0 (coatnet_0_224, timm.models.maxxvit). The qkv projection's output rows
    are laid out (head, qkv, d) in timm and (qkv, head, d) in mixlib: permuted, not copied."""
    mbconv = {"conv1_1x1": "conv1", "norm1": "norm1.0", "conv2_kxk": "conv2", "norm2": "norm2.0",
              "conv3_1x1": "conv3"}

    def block(m: re.Match) -> str:
        stage, index, rest = int(m[1]), int(m[2]), m[3]
        if stage < 2:  # CoAtNet-0's layout C-C-T-T: MBConv blocks
            head, _, tail = rest.partition(".")
            rest = f"{mbconv.get(head, head)}.{tail}"
        else:  # transformer blocks; the first one's norm1 is wrapped in timm
            rest = rest.replace("norm1.norm.", "norm1.").replace("attn.rel_pos.", "mixer.")
            rest = rest.replace("attn.", "mixer.")
        return f"stages.{stage}.{index}.{rest}"

    rules: Rules = [
        (r"stem\.conv1\.(.*)", r"stem.0.\1"),
        (r"stem\.norm1\.(.*)", r"stem.1.\1"),
        (r"stem\.conv2\.(.*)", r"stem.3.\1"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.(.*)", block),
        (r"head\.norm\.(.*)", r"head.post_norm.\1"),
        (r"head\.pre_logits\.fc\.(.*)", r"head.hidden.0.\1"),
        (r"head\.fc\.(.*)", r"head.fc.\1"),
    ]
    state = _rename(state_dict, rules, drop=(r"relative_position_index$",))
    for key in [k for k in state if k.endswith(("mixer.qkv.weight", "mixer.qkv.bias"))]:
        rows = state[key].shape[0]
        heads, width = rows // 3 // COATNET_HEAD_WIDTH, COATNET_HEAD_WIDTH
        order = torch.arange(rows).view(heads, 3, width).permute(1, 0, 2).reshape(-1)
        state[key] = state[key][order]
    return state


def van_from_original(state_dict: dict) -> dict:
    """Visual-Attention-Network/VAN-Classification's VAN (key names and shapes read from its
    models/van.py: patch_embed{i}.proj/.norm, block{i}.{j}.norm1, .attn.proj_1,
    .attn.spatial_gating_unit.{conv0, conv_spatial, conv1}, .attn.proj_2, .layer_scale_{1,2},
    .norm2, .mlp.{fc1, dwconv.dwconv, fc2}, the per-stage LayerNorm norm{i} and head). mixlib
    keeps each stage's patch embedding as its first module and its LayerNorm as its last."""
    depths = {}
    for key in state_dict:
        if (m := re.match(r"block(\d+)\.(\d+)\.", key)):
            depths[int(m[1])] = max(depths.get(int(m[1]), 0), int(m[2]) + 1)
    names = {"attn.proj_1.": "mixer.proj_1.", "attn.proj_2.": "mixer.proj_2.",
             "attn.spatial_gating_unit.conv0.": "mixer.mixer.conv0.conv.",
             "attn.spatial_gating_unit.conv_spatial.": "mixer.mixer.conv_spatial.conv.",
             "attn.spatial_gating_unit.conv1.": "mixer.mixer.conv1.",
             "layer_scale_1": "scale1.gamma", "layer_scale_2": "scale2.gamma",
             "mlp.dwconv.dwconv.": "mlp.dwconv."}

    def stage_norm(m: re.Match) -> str:
        stage = int(m[1])
        return f"stages.{stage - 1}.{depths[stage] + (1 if stage > 1 else 0)}.{m[2]}"

    rules: Rules = [
        (r"patch_embed1\.proj\.(.*)", r"stem.0.\1"),
        (r"patch_embed1\.norm\.(.*)", r"stem.1.\1"),
        (r"patch_embed(\d+)\.(proj|norm)\.(.*)",
         lambda m: f"stages.{int(m[1]) - 1}.0.{0 if m[2] == 'proj' else 1}.{m[3]}"),
        _blocks(r"block(\d+)\.(\d+)\.(.*)", names, stage_offset=-1),
        (r"norm(\d+)\.(.*)", stage_norm),
        (r"head\.(.*)", r"head.fc.\1"),
    ]
    return _rename(state_dict, rules)


def gfnet_from_original(state_dict: dict) -> dict:
    """raoyongming/GFNet's isotropic GFNet (gfnet.py: patch_embed.proj, pos_embed (1, N, C),
    blocks.{i}.{norm1, filter.complex_weight (h, w, C, 2), norm2, mlp.fc1, mlp.fc2}, norm,
    head). Tokens (B, N, C) there, maps (B, C, H, W) here: the position embedding and the
    filters are permuted to channels first, the MLP's Linear weights become 1×1 convolutions."""
    rules: Rules = [
        (r"patch_embed\.proj\.(.*)", r"stem.0.\1"),
        (r"pos_embed", "stem.1.weight"),
        (r"blocks\.(\d+)\.filter\.complex_weight", r"stages.0.\1.mixer.complex_weight"),
        (r"blocks\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.(.*)", r"stages.0.\1.\2.\3"),
        (r"norm\.(.*)", r"head.pre_norm.\1"),
        (r"head\.(.*)", r"head.fc.\1"),
    ]
    state = _as_1x1(_rename(state_dict, rules), r"\.mlp\.fc[12]\.weight$")
    tokens = state["stem.1.weight"]  # (1, N, C), N = side², row-major
    side = round(tokens.shape[1] ** 0.5)
    state["stem.1.weight"] = tokens.reshape(1, side, side, -1).permute(0, 3, 1, 2).contiguous()
    for key in [k for k in state if k.endswith("complex_weight")]:
        state[key] = state[key].permute(2, 0, 1, 3).contiguous()  # (h, w, C, 2) -> (C, h, w, 2)
    return state


def dwnet_from_original(state_dict: dict) -> dict:
    """Atten4Vis/DemystifyLocalViT's DWNet and dynamic DWNet (models/dwnet.py: patch_embed,
    layers.{i}.blocks.{j}.attn2conv.{conv0, bn0, conv, bn, conv2, bn2}, .bn, .mlp.{fc1, fc2},
    layers.{i}.downsample (Swin's patch merging, at the end of layer i), norm, head; the dynamic
    conv's generator is attn2conv.conv.{conv1, bn, conv2} and its bias attn2conv.conv.bias,
    whose (C·k²) outputs are laid out channel-major, as mixlib's)."""
    if any(".attn2conv.conv.conv1.0." in key for key in state_dict):
        raise ValueError("dwnet_t and ddwnet_t convert DWNet's static and homogeneous dynamic convs; "
                         "this checkpoint has the I-D-DW layout (attn2conv.conv.conv1.0, .conv2.0): "
                         "use idwnet_t")
    mixer = {"attn2conv.conv.conv1.": "mixer.generator.1.", "attn2conv.conv.bn.": "mixer.generator.2.",
             "attn2conv.conv.conv2.": "mixer.generator.4.", "attn2conv.conv.bias": "mixer.bias"}
    if not any(".attn2conv.conv.conv1." in key for key in state_dict):
        del mixer["attn2conv.conv.bias"]  # a static conv: conv.bias is the convolution's
    return _dwnet_layout(state_dict, mixer)


def idwnet_from_original(state_dict: dict) -> dict:
    """DemystifyLocalViT's inhomogeneous dynamic DWNet (models/idynamic.py, IDynamicDWConv, in
    dwnet.py's blocks): attn2conv.conv.conv1 = Sequential(1×1 conv C → C/4 with bias, BN, ReLU),
    attn2conv.conv.conv2 = Sequential(1×1 conv C/4 → G·k²); the kernel views its output as
    (B, G, k, k, H, W), group-major as mixlib's (B, G, k², H, W), so the generator is renamed,
    not permuted. G = 32 groups in every stage (the config's INHOMO_HEADS 3/6/12/24 are the
    channels per group); there is no bias on the aggregation."""
    if any(".attn2conv.conv.weight" in key or ".attn2conv.conv.conv1.weight" in key for key in state_dict):
        raise ValueError("idwnet_t converts the I-D-DW layout (attn2conv.conv.conv1.0, .conv2.0); this "
                         "checkpoint has a static or homogeneous dynamic conv: use dwnet_t or ddwnet_t")
    return _dwnet_layout(state_dict, {"attn2conv.conv.conv1.0.": "mixer.generator.0.",
                                      "attn2conv.conv.conv1.1.": "mixer.generator.1.",
                                      "attn2conv.conv.conv2.0.": "mixer.generator.3."})


def _dwnet_layout(state_dict: dict, mixer: dict[str, str]) -> dict:
    """DemystifyLocalViT's Swin-T-shaped skeleton and DWBlock, with `mixer` renaming the keys of
    the spatial conv (attn2conv.conv.*), which differ by variant."""
    names = {**mixer, "attn2conv.conv0.": "conv0.", "attn2conv.bn0.": "bn0.",
             "attn2conv.conv.": "mixer.conv.", "attn2conv.bn.": "bn1.", "attn2conv.conv2.": "conv2.",
             "attn2conv.bn2.": "bn2.", "bn.": "norm."}
    rules: Rules = [
        (r"patch_embed\.proj\.(.*)", r"stem.0.\1"),
        (r"patch_embed\.norm\.(.*)", r"stem.1.\1"),
        # the merging at the end of layer i is the first module of mixlib's stage i + 1
        (r"layers\.(\d+)\.downsample\.(.*)", lambda m: f"stages.{int(m[1]) + 1}.0.{m[2]}"),
        _blocks(r"layers\.(\d+)\.blocks\.(\d+)\.(.*)", names),
        (r"norm\.(.*)", r"head.pre_norm.\1"),
        (r"head\.(.*)", r"head.fc.\1"),
    ]
    return _as_1x1(_rename(state_dict, rules), r"\.mlp\.fc[12]\.weight$")


def hornet_from_original(state_dict: dict) -> dict:
    """raoyongming/HorNet's HorNet (hornet.py: downsample_layers.0 = stem conv + LN,
    downsample_layers.{1,2,3} = LN + 2×2 conv, stages.{i}.{j}.{norm1, gnconv, norm2, pwconv1,
    pwconv2, gamma1, gamma2}, norm, head). gnconv holds proj_in, dwconv (a 7×7 depthwise conv,
    or for HorNet-GF a GlobalLocalFilter: pre_norm, dw, complex_weight (C/2, h, w, 2), post_norm,
    the same names and shapes as mixlib's), pws.{k} and proj_out; its scale 1/3 is a constant,
    not a weight. pwconv1/2 are Linear layers, mixlib's 1×1 convolutions."""
    names = {"gnconv.dwconv.weight": "mixer.spatial.conv.weight",
             "gnconv.dwconv.bias": "mixer.spatial.conv.bias",
             "gnconv.dwconv.": "mixer.spatial.", "gnconv.": "mixer.",
             "gamma1": "scale1.gamma", "gamma2": "scale2.gamma",
             "pwconv1.": "mlp.fc1.", "pwconv2.": "mlp.fc2."}
    rules: Rules = [
        (r"downsample_layers\.0\.(.*)", r"stem.\1"),
        (r"downsample_layers\.(\d+)\.(.*)", r"stages.\1.0.\2"),
        _blocks(r"stages\.(\d+)\.(\d+)\.(.*)", names),
        (r"norm\.(.*)", r"head.post_norm.\1"),
        (r"head\.(.*)", r"head.fc.\1"),
    ]
    return _as_1x1(_rename(state_dict, rules), r"\.mlp\.fc[12]\.weight$")


def elsa_swin_from_original(state_dict: dict) -> dict:
    """damo-cv/ELSA's ELSA-Swin (cls/models/elsa_swin.py, cls/models/elsa/elsa.py): Swin's
    skeleton (patch_embed, layers.{i}.blocks.{j}, layers.{i}.downsample at the end of layer i,
    norm, head) with ELSA blocks in layers 0-2 (norm1, attn.pre_proj (a 1×1 conv to q, k, v),
    attn.attn.{0, 2} (the generator), attn.ghost_head, attn.post_proj, norm2, mlp) and Swin
    blocks in layer 3, whose attention is not Swin's layout:

    - attn.pre_proj (3C, C) splits its rows (v, q, k; head; d), where mixlib's qkv is
      (q, k, v; head; d): the three blocks of rows are reordered.
    - attn.rb (heads, (2M-1)²) is indexed by key - query (relative_id), mixlib's table
      ((2M-1)², heads) by query - key: offset Δ is row f(Δ) of one and column f(-Δ)
      = (2M-1)² - 1 - f(Δ) of the other, so the table is rb reversed along its offsets and
      transposed.
    - the ghost head with ELSA-Swin's λ = 0, γ = 1 is ghost_add alone, (1, C, k, k) there and
      (C, k²) here (row-major offsets in both).
    """
    def block(m: re.Match) -> str:
        stage, index, rest = int(m[1]), int(m[2]), m[3]
        swin = {"attn.pre_proj.": "mixer.qkv.", "attn.post_proj.": "mixer.proj.",
                "attn.rb": "mixer.relative_position_bias_table"}
        elsa = {"attn.attn.0.": "mixer.generator.0.", "attn.attn.2.": "mixer.generator.2.",
                "attn.ghost_head": "mixer.ghost_add", "attn.": "mixer."}
        for theirs, ours in (swin if stage == _ELSA_SWIN_STAGE else elsa).items():
            if rest.startswith(theirs):
                rest = ours + rest[len(theirs):]
                break
        return _in_stage(stage, index, rest)

    rules: Rules = [
        (r"patch_embed\.proj\.(.*)", r"stem.0.\1"),
        (r"patch_embed\.norm\.(.*)", r"stem.1.\1"),
        (r"layers\.(\d+)\.downsample\.(.*)", lambda m: f"stages.{int(m[1]) + 1}.0.{m[2]}"),
        (r"layers\.(\d+)\.blocks\.(\d+)\.(.*)", block),
        (r"norm\.(.*)", r"head.pre_norm.\1"),
        (r"head\.(.*)", r"head.fc.\1"),
    ]
    state = _as_1x1(_rename(state_dict, rules, drop=(r"relative_id$", r"attn_mask$")),
                    r"\.mlp\.fc[12]\.weight$")
    for key in [k for k in state if k.endswith("mixer.ghost_add")]:
        ghost = state[key]
        if ghost.dim() != 4 or ghost.shape[0] != 1:  # λ ≠ 0 stacks (ghost_mul, ghost_add)
            raise ValueError(f"{key}: ELSA-Swin-T's ghost head (λ=0, γ=1) is (1, C, k, k), got "
                             f"{tuple(ghost.shape)}; mixlib's elsa_swin_t has no ghost multiplier")
        state[key] = ghost.reshape(ghost.shape[1], -1)
    for key in [k for k in state if k.endswith(("mixer.qkv.weight", "mixer.qkv.bias"))]:
        v, q, k = state[key].chunk(3, dim=0)
        state[key] = torch.cat([q, k, v], dim=0)
    for key in [k for k in state if k.endswith("mixer.relative_position_bias_table")]:
        # (heads, f(key - query)) -> (f(query - key), heads)
        state[key] = state[key].flip(-1).t().contiguous()
    return state


_ELSA_SWIN_STAGE = 3  # ELSA-Swin keeps Swin's window attention in its last stage


_CONVERTERS: dict[str, Callable[[dict], dict]] = {
    "convnext_t": convnext_from_timm,
    "swin_t": swin_from_timm,
    "poolformer_s12": poolformer_from_timm,
    "coatnet_0": coatnet_from_timm,
    "van_b0": van_from_original,
    "gfnet_ti": gfnet_from_original,
    "dwnet_t": dwnet_from_original,
    "ddwnet_t": dwnet_from_original,
    "idwnet_t": idwnet_from_original,
    "hornet_t_7x7": hornet_from_original,
    "hornet_t_gf": hornet_from_original,
    "elsa_swin_t": elsa_swin_from_original,
}


def converters() -> dict[str, Callable[[dict], dict]]:
    """{preset: the function that converts its released layout}."""
    return dict(_CONVERTERS)


def convert_checkpoint(name: str, state_dict: dict) -> dict:
    """The state dict of preset `name` from `state_dict` in its original release's layout (the
    table in this module's docstring). Accepts a checkpoint that wraps the weights in "model"
    or "state_dict", as the releases do."""
    if name not in _CONVERTERS:
        raise ValueError(f"name must be a preset with a converter ({', '.join(sorted(_CONVERTERS))}), "
                         f"got {name!r}")
    for wrapper in ("model", "state_dict"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
    return _CONVERTERS[name](dict(state_dict))


def load_pretrained(model: torch.nn.Module, name: str, *, cache_dir=None) -> torch.nn.Module:
    """Load the released ImageNet weights of preset `name` into `model` through timm's hub
    (Hugging Face) and `convert_checkpoint`; a clear error when they cannot be had."""
    if name not in PRETRAINED:
        raise ValueError(f"pretrained=True: timm's hub has no weights for {name!r}; presets with "
                         f"weights: {', '.join(sorted(PRETRAINED))} (others: convert a released "
                         "checkpoint with models.convert_checkpoint and load_state_dict)")
    try:
        import timm
    except ImportError as error:
        raise ImportError("pretrained=True loads the weights through timm: pip install timm") from error
    try:
        twin = timm.create_model(PRETRAINED[name], pretrained=True, cache_dir=cache_dir)
    except Exception as error:  # the hub's errors vary by version: name the likely cause
        raise RuntimeError(
            f"pretrained=True could not fetch {PRETRAINED[name]!r} from timm's hub (Hugging Face): "
            f"{type(error).__name__}: {error}. Offline? Run once with network access (the "
            "weights are cached), or download the checkpoint and use models.convert_checkpoint"
        ) from error
    state = convert_checkpoint(name, twin.state_dict())
    if model.head.num_classes != state["head.fc.weight"].shape[0]:  # a new classifier: keep it
        state = {k: v for k, v in state.items() if not k.startswith("head.fc.")}
        model.load_state_dict(state, strict=False)
    else:
        model.load_state_dict(state)
    return model
