"""The model zoo, held as data: ``get_model(name)`` → a ModelSpec (no torch needed to count).

>>> from hetcalc.core.zoo import list_models, get_model
>>> list_models()                       # natural order
>>> get_model("vgg16", "imagenet")      # the torchvision VGG-16 at 224×224
"""

from ..records import Builder, Conv, Linear, ModelSpec
from . import families  # noqa: F401  (registers the entrypoints
from .registry import get_model, list_models, model_datasets, model_doc, register_model

__all__ = [
    "Builder",
    "Conv",
    "Linear",
    "ModelSpec",
    "get_model",
    "list_models",
    "model_datasets",
    "model_doc",
    "register_model",
]
