"""Models: a MetaFormer-style backbone, the blocks of the papers, and named presets.

    from mixlib import models
    models.available()                                   # preset names
    net = models.build("swin_t", num_classes=1000)       # a paper's ImageNet model
"""
from .backbone import Backbone, ClassifierHead, PositionEmbedding, hierarchy
from .presets import available, build, register_model

__all__ = ["Backbone", "ClassifierHead", "PositionEmbedding", "hierarchy", "available", "build",
           "register_model"]
