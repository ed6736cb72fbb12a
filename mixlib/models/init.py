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

import torch.nn as nn

__all__ = ["INITS", "init_weights"]

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
