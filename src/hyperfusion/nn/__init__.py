"""Neural-network building blocks: hyper layers, ``hyperize`` for any network, and conditioning blocks."""

from hyperfusion.nn.embedding import estimate_embedding_variance, infer_embedding_dim
from hyperfusion.nn.hyper import HyperConv3d, HyperLayer, HyperLinear, principled_init_
from hyperfusion.nn.hyperize import ConditionedLayer, HyperModel, hyperize

__all__ = [
    "ConditionedLayer",
    "HyperConv3d",
    "HyperLayer",
    "HyperLinear",
    "HyperModel",
    "estimate_embedding_variance",
    "hyperize",
    "infer_embedding_dim",
    "principled_init_",
]
