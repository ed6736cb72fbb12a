"""The mixers of the book, one module per family, and their registry.

    from mixlib import mixers
    mixers.available()                  # the names below
    m = mixers.build("lka", 64)         # the paper's defaults
    m = mixers.build("dwconv", 64, kernel_size=5)

Every mixer maps (B, C, H, W) to (B, C, H, W) and holds no norm, residual or drop path: the
blocks in mixlib.models own those. Two exceptions follow their papers: RelativeAttention's
``dim_out`` changes the channel count (CoAtNet's first block of a stage), and HorNet's
GlobalLocalFilter, a part of gnConv, keeps the two LayerNorms HorNet puts around it.

Local mixers expose ``aggregation_weights(x)``, the w of y_i = Σ_j w_ij ⊙ x_j, so that their
aggregation can be checked as
``local_aggregate(x or v, mixer.aggregation_weights(x), k)`` (tests/test_equivalences.py):
the whole of ``mixer(x)`` for pooling and I-D-DW, before the bias of DWConv and D-DW and
before the output projection of the attentions and ELSA.
The two local attentions also give ``attention_map(x)``, (B, h, N, N): the weight of every query
pixel on every key pixel of the map, for figures of what a pixel attends to. Every mixer gives
``multiply_adds(height, width)``, its chapter's cost formula for one image (None where the cost
is not multiply-adds), which tests/test_mixers.py holds to the FLOPs torch's counter measures.
"""
from ._registry import (SMALL_WINDOW, FlopFormula, MixerInfo, SmallMap, available, build, info,
                        map_pixels, mixer_class, no_weight_decay, register_mixer,
                        unregister_mixer)
from .attention import NeighborhoodAttention, RelativeAttention, WindowAttention
from .conv import DWConv, DynamicDWConv, InhomogeneousDWConv, Pooling
from .elsa import ELSA
from .hornet import GlobalFilter, GlobalLocalFilter, GnConv
from .lka import LargeKernelAttention

__all__ = [
    "MixerInfo", "FlopFormula", "SmallMap", "SMALL_WINDOW", "available", "build", "info",
    "map_pixels", "mixer_class", "no_weight_decay", "register_mixer", "unregister_mixer",
    "DWConv", "DynamicDWConv", "InhomogeneousDWConv", "Pooling",
    "WindowAttention", "NeighborhoodAttention", "RelativeAttention",
    "LargeKernelAttention", "ELSA", "GnConv", "GlobalFilter", "GlobalLocalFilter",
]
