"""The initialisation the book's models start from, and whose it is.

ConvNeXt and HorNet start their linear and convolution weights from a normal distribution
with std 0.02 truncated at ±2 (absolute, as timm's ``trunc_normal_`` does), their biases at
zero and their norms at the identity. Swin, GFNet and DWNet do so for their linear layers and
leave their few convolutions (the patch embedding; DWNet's mixers) at PyTorch's default; VAN
and timm's CoAtNet draw convolution weights from N(0, 2/fan_out), fan_out = k²·C_out/groups
(EfficientNet's rule), and linear ones from the truncated normal. The presets of
`models.presets` and `models.small` take the first rule everywhere, so that an initialisation
is not one more difference between the mixers they compare (the appendix's reference networks,
`models.reference`, keep PyTorch's default). PyTorch's own default (Kaiming-uniform with a = √5) scales with the
fan-in instead: a 1×1 convolution from 288 channels starts with std 0.034, a 7×7 depthwise
kernel with std 0.082.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["INITS", "init_weights", "mixer_gains"]

INITS = ("trunc_normal", "torch")


def init_weights(model: nn.Module, init: str = "trunc_normal", *, std: float = 0.02) -> nn.Module:
    """Initialise every nn.Linear and nn.Conv2d of `model` in place and return it.

    init: "trunc_normal" (ConvNeXt's and HorNet's: weights N(0, std²) truncated at ±2,
        biases 0; it replaces any initialisation a module gave itself) or
        "torch" (leave PyTorch's default initialisation as the modules made it).
    Norm layers, position tables and other parameters keep the values their modules gave them.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "trunc_normal":
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model


def mixer_gains(model: nn.Module, x: torch.Tensor, kinds: type | tuple[type, ...]) -> list[dict]:
    """How each mixer of type `kinds` in `model` treats the batch `x`, in the order they run.

    One dict per mixer: ``gain``, the root mean square of its output over that of its input
    (how much larger than its input it makes the block's branch); ``map``, its input's width;
    and, for a mixer whose ``aggregation_weights`` are made per image (D-DW, I-D-DW),
    ``spread``: how far each image's weights are from the batch's average, relative to that
    average (the root mean square of each). The model runs once, without gradients, in the
    mode it is in (``train()`` shows what the first steps see: batch statistics).
    """
    def rms(t: torch.Tensor) -> float:
        return t.pow(2).mean().sqrt().item()

    rows: list[dict] = []

    def record(mixer: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        row = {"gain": rms(output) / rms(inputs[0]), "map": inputs[0].shape[-1]}
        if hasattr(mixer, "aggregation_weights"):
            w = mixer.aggregation_weights(inputs[0])  # (B or 1, G, K, H or 1, W or 1)
            if w.shape[0] > 1:  # per image: a static kernel has no spread
                average = w.mean(0, keepdim=True)  # over the images of the batch
                row["spread"] = rms(w - average) / rms(average)
        rows.append(row)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return rows
