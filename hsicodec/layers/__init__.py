"""Coding layers: each turns a prepared scene into sections and back, behind one protocol.

:mod:`hsicodec.layers.base` defines the protocol, :mod:`hsicodec.layers.registry` lists the
layers (``maps``: the coefficient-map layer, ``network``: the meta-learned network's latents).
"""
