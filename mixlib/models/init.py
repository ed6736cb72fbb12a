"""The papers' initialisation, in one place.

Swin, ConvNeXt, CoAtNet (timm), VAN, HorNet and GFNet all start their linear and convolution
weights from a normal distribution with std 0.02 truncated at ±2 (absolute, as timm's
``trunc_normal_`` does), their biases at zero and their norms at the identity. PyTorch's own
default (Kaiming-uniform with a = √5) scales with the fan-in instead: a 1×1 convolution from 288
channels starts with std 0.034, a 7×7 depthwise kernel with std 0.082.
"""
from __future__ import annotations

import torch.nn as nn

__all__ = ["INITS", "init_weights"]

INITS = ("trunc_normal", "torch")


def init_weights(model: nn.Module, init: str = "trunc_normal", *, std: float = 0.02) -> nn.Module:
    """Initialise every nn.Linear and nn.Conv2d of `model` in place and return it.

    init: "trunc_normal" (the papers': weights N(0, std²) truncated at ±2, biases 0) or
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
