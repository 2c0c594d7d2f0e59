"""Neural-network building blocks: hyper layers and every fusion method, for any network.

``hyperize`` (HyperFusion), ``film``, ``daft`` and ``concat`` each take an image network and the names of the
submodules where the tabular data enters, and return a :class:`ConditionedModel` called ``model(image, tabular)``.
"""

from hyperfusion.nn.conditioned import (
    ConditionedModel,
    HyperModel,
    tabular_encoders,
    warm_start_,
    warm_start_network_,
)
from hyperfusion.nn.conditioning import DAFT, FiLM
from hyperfusion.nn.embedding import estimate_embedding_variance, infer_embedding_dim
from hyperfusion.nn.fusion import concat, daft, film
from hyperfusion.nn.hyper import HyperLayer, HyperLinear, principled_init_
from hyperfusion.nn.hyper_conv import HyperConv, HyperConv1d, HyperConv2d, HyperConv3d
from hyperfusion.nn.hyperize import hyperize, principled_init_from_data_
from hyperfusion.nn.slots import ConcatInput, ConditionedLayer, ConditionSlot, ModulatedInput

__all__ = [
    "DAFT",
    "ConcatInput",
    "ConditionSlot",
    "ConditionedLayer",
    "ConditionedModel",
    "FiLM",
    "HyperConv",
    "HyperConv1d",
    "HyperConv2d",
    "HyperConv3d",
    "HyperLayer",
    "HyperLinear",
    "HyperModel",
    "ModulatedInput",
    "concat",
    "daft",
    "estimate_embedding_variance",
    "film",
    "hyperize",
    "infer_embedding_dim",
    "principled_init_",
    "principled_init_from_data_",
    "tabular_encoders",
    "warm_start_",
    "warm_start_network_",
]
