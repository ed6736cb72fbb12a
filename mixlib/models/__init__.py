"""Models: a MetaFormer-style backbone, the blocks of the papers, and named presets.

    from mixlib import models
    models.available()                                   # preset names
    net = models.build("swin_t")                         # a paper's ImageNet model
    net = models.build("lka_cifar")                      # the book's small LKA model
    net = models.build("denseconv_cifar")                # the dense-convolution reference
    net = models.trained("dwconv_cifar")                 # with the comparison's trained weights
"""
from .backbone import Backbone, ClassifierHead, PositionEmbedding, hierarchy
from . import reference, small  # noqa: F401  (register the small presets and the reference networks)
from .presets import available, build, register_model
from .trained import trained

__all__ = ["Backbone", "ClassifierHead", "PositionEmbedding", "hierarchy", "available", "build",
           "register_model", "trained"]
