"""The coding layers the codec knows, in the order it tries them at effort max (ties go to the earlier).

Adding a layer: a folder under ``hsicodec/layers/`` with an object that follows
:class:`hsicodec.layers.base.Layer`, and one :func:`register` line below.
"""

from __future__ import annotations

from hsicodec.errors import OptionError
from hsicodec.layers.base import Layer
from hsicodec.layers.maps.layer import MapLayer
from hsicodec.layers.network.layer import NetworkLayer
from hsicodec.layers.predictive.layer import PredictiveLayer

LAYERS: dict[str, Layer] = {}


def register(layer: Layer) -> Layer:
    """Make a layer known to the encoder (``compress(layer=...)``, best of the layers) and the decoder (its
    header keys). A second layer of the same name replaces the first."""
    LAYERS[layer.name] = layer
    return layer


def unregister(name: str) -> None:
    """Forget a layer (tests that register one of their own)."""
    LAYERS.pop(name, None)


def get_layer(name: str) -> Layer:
    """The registered layer of that name; OptionError lists the others."""
    try:
        return LAYERS[name]
    except KeyError:
        raise OptionError(f"unknown layer {name!r}: choose auto, all, {', '.join(LAYERS)}") from None


def layer_keys() -> frozenset:
    """Every header ``codec`` key some registered layer owns."""
    return frozenset().union(*(layer.keys for layer in LAYERS.values()))


register(NetworkLayer())
register(MapLayer())
register(PredictiveLayer())
