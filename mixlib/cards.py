"""Model cards: one per preset, generated from the registries into book/models.md.

    python -m mixlib.cards            # rewrites book/models.md
    python -m mixlib.cards --check    # exit 1 if book/models.md is not what the code gives

Each card says the paper, the parameters (1000 or 10 classes, as built), the forward FLOPs of
one image at the preset's own size (mixlib.flops), the stages, what the preset was verified
against and what is known to differ from the original. The numbers are computed here, never
typed in; tests/test_cards.py checks that the committed page is up to date.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import mixers, models
from .flops import forward_flops
from .models import small
from .models.convert import PRETRAINED

__all__ = ["PAPER_MODELS", "model_card", "render", "main"]

PAGE = Path(__file__).resolve().parents[1] / "book" / "models.md"

_PARITY = "whole-model outputs equal timm's {} on converted weights in float64 (tests/test_convert.py)"


def _original(source: str, where: str = "") -> str:
    return (f"outputs equal, in float64{where}, a forward of {source}'s layers on a state dict "
            "with the original's key names and shapes, converted (tests/test_convert.py); the "
            "reference code's parameter count within 0.5%")


_DWNET = "DemystifyLocalViT's dwnet.py"
# preset: (paper key, verified against, known differences)
PAPER_MODELS = {
    "convnext_t": ("liu2022convnext", _PARITY.format("convnext_tiny"), "none known"),
    "swin_t": ("liu2021swin", _PARITY.format("swin_tiny_patch4_window7_224"),
               "shifted-window masks use -inf where Swin adds -100 (a difference of order e^-100)"),
    "poolformer_s12": ("yu2022metaformer",
                       "stage maps equal timm's poolformer_s12 on converted weights in float64 "
                       "(tests/test_convert.py)",
                       "the head normalises the map before pooling (GroupNorm), as sail-sg/poolformer "
                       "does; timm's normalises the pooled vector, so timm's logits differ"),
    "coatnet_0": ("dai2021coatnet", _PARITY.format("coatnet_0_224"),
                  "inputs larger than image_size read a bicubically enlarged bias table (timm's "
                  "rule for loading at a new size); timm has no released weights of this layout; "
                  "timm initialises convolutions from N(0, 2/fan_out), mixlib's default is "
                  "the truncated normal (std 0.02) of ConvNeXt (init='torch' for PyTorch's)"),
    "dwnet_t": ("han2022connection", _original(_DWNET), "none known"),
    "ddwnet_t": ("han2022connection", _original(_DWNET), "none known"),
    "idwnet_t": ("han2022connection",
                 _original("DemystifyLocalViT's dwnet.py and idynamic.py"),
                 "none known"),
    "elsa_swin_t": ("zhou2021elsa",
                    _original("ELSA's elsa_swin.py and elsa.py", " at 224 px"),
                    "stage 4 keeps plain Swin blocks, as the paper's model; their released "
                    "layout, (v, q, k) in one projection and a key - query bias table, is "
                    "reordered by the converter; beyond 224 px (a size ELSA's own model does "
                    "not take) their shifted windows use -inf masks where ELSA adds -100"),
    "van_b0": ("guo2023van", _original("VAN-Classification's van.py"),
               "VAN initialises convolutions from N(0, 2/fan_out); mixlib's default is the "
               "truncated normal (std 0.02) of ConvNeXt (init='torch' for PyTorch's)"),
    "hornet_t_7x7": ("rao2022hornet", _original("HorNet's hornet.py"), "none known"),
    "hornet_t_gf": ("rao2022hornet",
                    _original("HorNet's hornet.py",
                              " at 224 px, where the global filters fit the maps unresized"),
                    "the global filter runs in float64 for float64 inputs, where HorNet casts "
                    "it to float32; otherwise none known"),
    "gfnet_ti": ("rao2021gfnet", _original("GFNet's gfnet.py"),
                 "other input sizes resize the position embedding and the filters "
                 "bilinearly, in every forward; GFNet's model takes one size and resizes "
                 "both bicubically, once, when a checkpoint is loaded for another size "
                 "(main_gfnet.py --finetune)"),
}
_SMALL_VERIFIED = ("builds bit for bit as recorded for the comparison "
                   "(tests/test_small_presets_unchanged.py); "
                   "its mixer's contract and equivalences (tests/test_mixers.py, tests/test_equivalences.py)")


def _mixer_names(model: torch.nn.Module) -> list[str]:
    names = []
    for module in model.modules():
        kind = type(module)
        # a mixer that is part of another, unregistered (HorNet's GlobalLocalFilter), by its class
        name = getattr(kind, "registry_name", None) or (kind.__name__ if hasattr(kind, "info")
                                                        else None)
        if name and name not in names:
            names.append(name)
    return names


def model_card(name: str) -> dict:
    """The card of preset `name`: paper, params, GFLOPs, image size, stage widths, mixers,
    verified, differences."""
    torch.manual_seed(0)
    model = models.build(name).eval()
    size = model.image_size
    flops = forward_flops(model, torch.zeros(1, 3, size, size))["total"]
    mixer_names = _mixer_names(model)
    if name in PAPER_MODELS:
        paper, verified, differences = PAPER_MODELS[name]
    elif name in small.PRESETS:
        base = name.rsplit("_", 1)[0]
        paper = "dai2021coatnet" if base in small.HYBRIDS else mixers.info(mixer_names[0]).paper
        verified, differences = _SMALL_VERIFIED, "the book's small skeleton, not a paper's model"
    else:  # the dense-convolution reference networks
        paper, verified = "jordan2024airbench", "its layer list (tests/test_models.py)"
        differences = "a learned stem and the book's training recipe, not airbench's"
    return {"name": name, "paper": paper, "params": sum(p.numel() for p in model.parameters()),
            "gflops": flops / 1e9, "image_size": size, "classes": model.num_classes,
            "widths": model.dims, "mixers": mixer_names,
            "verified": verified, "differences": differences}


def _group(name: str) -> str:
    if name in PAPER_MODELS:
        return "The papers' ImageNet models"
    if name in small.PRESETS:
        return "The book's small models (CIFAR-10 and Imagenette)"
    return "Reference networks"


def render(names: list[str] | None = None) -> str:
    names = names or models.available()
    cards = [model_card(name) for name in names]
    lines = ["# Model cards", "",
             "One card per preset of `mixlib.models`, generated by `python -m mixlib.cards` from",
             "the registries: parameters as built, forward FLOPs of one image at the preset's own",
             "size (`mixlib.flops.forward_flops`: 2 per multiply-add), what each was checked against",
             "and what is known to differ from the original. Build any of them with",
             "`mixlib.models.build(name)`; the papers' models also take timm's arguments",
             "(`features_only`, `out_indices`, `in_chans`, `num_classes`, and `pretrained` where",
             f"timm serves released weights: {', '.join(f'`{n}`' for n in PRETRAINED)}).",
             "`mixlib.models.trained(name)` loads a small preset with the weights of its sweep's",
             "seed-0 run, once that run has finished (`results/weights/`), and",
             "`mixlib.models.convert_checkpoint(name, state_dict)` converts a paper's released",
             "checkpoint for `load_state_dict`. The Imagenette presets are listed at their own",
             "160 px; chapter 8 trains them at 128 px (`--image-size 128`), where every preset has",
             "fewer FLOPs, and the global filter and the presets with relative attention have",
             "fewer parameters (their filters and bias tables follow the map); `trained` builds",
             "them at that size.", ""]
    for group in ("The papers' ImageNet models", "The book's small models (CIFAR-10 and Imagenette)",
                  "Reference networks"):
        members = [c for c in cards if _group(c["name"]) == group]
        if not members:
            continue
        lines += [f"## {group}", "",
                  "| preset | paper | params (M) | GFLOPs | image | mixers |", "|---|---|---|---|---|---|"]
        for c in members:
            lines.append(f"| `{c['name']}` | {{cite:t}}`{c['paper']}` | {c['params'] / 1e6:.2f} "
                         f"| {c['gflops']:.3f} | {c['image_size']} "
                         f"| {', '.join(c['mixers']) or 'dense conv'} |")
        lines.append("")
        for c in members:
            lines += [f"### `{c['name']}`", "",
                      f"- **Paper:** {{cite:t}}`{c['paper']}`",
                      f"- **Size:** {c['params']:,} parameters ({c['classes']} classes), "
                      f"{c['gflops']:.3f} GFLOPs forward at {c['image_size']}×{c['image_size']} px",
                      f"- **Stages:** {len(c['widths'])}, of widths {c['widths']}; mixers: "
                      f"{', '.join(c['mixers']) or 'none (dense convolutions)'}",
                      f"- **Verified:** {c['verified']}",
                      f"- **Known differences:** {c['differences']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixlib.cards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with book/models.md")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = PAGE.is_file() and PAGE.read_text() == text
        print("book/models.md is up to date" if same else "book/models.md is stale: python -m mixlib.cards")
        return 0 if same else 1
    from .files import atomic_write
    atomic_write(PAGE, lambda tmp: tmp.write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
