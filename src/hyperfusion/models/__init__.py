"""The paper's networks and every baseline, behind one registry.

``create_model(name, **kwargs)`` builds any of them; every model is called ``model(image, tabular)`` and returns
logits ``[B, C]`` (classification) or predictions ``[B]`` (regression). ``list_models()`` names them and
``model_info(name)`` says what each needs (task, fusion type, inputs, default input shape). Each family is one trunk
factory (``ad_trunk``, ``brainage_trunk``) plus one fusion from :mod:`hyperfusion.nn` per model.
"""

from hyperfusion.models import ad, brain_age  # noqa: F401  (registers the models)
from hyperfusion.models.ad import ad_trunk
from hyperfusion.models.brain_age import brainage_trunk
from hyperfusion.models.crop_reader import CropReader
from hyperfusion.models.late_fusion import LateFusionClassifier, fit_late_fusion_weight
from hyperfusion.models.registry import (
    ModelInfo,
    create_model,
    list_models,
    model_arguments,
    model_info,
    register_model,
    with_crop_readers,
)
from hyperfusion.models.resnet import PreActResNet3d
from hyperfusion.models.tabular import TabularMLP, TabularOnlyModel
from hyperfusion.models.vgg import VGG3dRegressor

__all__ = [
    "CropReader",
    "LateFusionClassifier",
    "ModelInfo",
    "PreActResNet3d",
    "TabularMLP",
    "TabularOnlyModel",
    "VGG3dRegressor",
    "ad_trunk",
    "brainage_trunk",
    "create_model",
    "fit_late_fusion_weight",
    "list_models",
    "model_arguments",
    "model_info",
    "register_model",
    "with_crop_readers",
]
