"""Models: a MetaFormer-style backbone, the blocks of the papers, and named presets.

    from mixlib import models
    models.available()                                   # preset names
    net = models.build("swin_t")                         # a paper's ImageNet model
    net = models.build("lka_cifar")                      # the book's small LKA model
    net = models.build("denseconv_cifar")                # the dense-convolution reference
    net = models.trained("dwconv_cifar")                 # with the comparison's trained weights
    net = models.build("convnext_t", pretrained=True)    # released weights, through timm's hub
    maps = models.build("swin_t", features_only=True, out_indices=(1, 2, 3))(images)
    state = models.convert_checkpoint("swin_t", released_state_dict)
"""
from .backbone import Backbone, ClassifierHead, FeatureInfo, FeatureMaps, PositionEmbedding, hierarchy
from .convert import convert_checkpoint
from .init import mixer_gains
from . import reference, small  # noqa: F401  (register the small presets and the reference networks)
from .presets import available, build, register_model
from .trained import trained

__all__ = ["Backbone", "ClassifierHead", "FeatureInfo", "FeatureMaps", "PositionEmbedding",
           "hierarchy", "available", "build", "convert_checkpoint", "mixer_gains", "register_model",
           "trained"]
