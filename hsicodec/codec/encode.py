"""Cube → `.hsim`: prepare the scene, ask the coding layers for files, keep the best.

The codec knows no layer's internals: it validates the cube and the target, runs the scene
analysis (:mod:`hsicodec.codec.analysis`), and asks the layers of :mod:`hsicodec.layers.registry`
(or those the caller chose) for a file through the layer protocol (:mod:`hsicodec.layers.base`).
Below effort max the cheapest layer goes first and the first file that meets the target wins
(the coefficient-map layer, then the network's latents as its fallback); at effort max every
layer encodes, the best file is kept and its layer may refine it, and the default effort's file
competes too, so effort max never misses a target the default effort meets nor writes a worse file.
Without any target the default rate applies, and a cube whose smallest file is over it gets that
smallest file (the default never fails); ``or_smallest`` asks the same of an explicit rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from hsicodec.codec.analysis import DEFAULT_BPPPB, MAX_ABS_VALUE, analyse, effort_steps
from hsicodec.errors import OptionError
from hsicodec.layers.base import Encoded, Layer, Scene, Target, one_target
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.network.search import LATENT_CODINGS
from hsicodec.layers.registry import LAYERS, get_layer

MAP_CODING = "maps"  # in ``latent_codings``: the coefficient-map layer
SMALLEST_FILE = "smallest file"  # stats["target_fallback"] when a rate target was out of reach
#: names ``latent_codings`` takes (ablations): the network layer's latent codings and the map layer
CODINGS = (*LATENT_CODINGS, MAP_CODING)


def select_layers(layer: str | None, latent_codings: tuple | None) -> tuple[list, dict, bool]:
    """(layers to use in registry order, options per layer name, whether the caller chose them).

    ``layer``: "auto" / None (every registered layer, the cheapest that meets the target below effort
    max), "all" (every registered layer, the best file kept) or one layer's name, forced alone.
    ``latent_codings``: for ablations, names of :data:`CODINGS` (the network's latent codings
    and/or ``"maps"``)."""
    if latent_codings is not None:
        if not latent_codings or not set(latent_codings) <= set(CODINGS):
            raise OptionError(f"latent codings must be among {', '.join(CODINGS)}")
        if layer not in (None, "auto"):
            raise OptionError("give a layer or latent codings, not both")
        net = tuple(n for n in latent_codings if n != MAP_CODING)
        chosen = ([LAYERS["network"]] if net else []) + ([LAYERS[MAP_CODING]] if MAP_CODING in latent_codings else [])
        return chosen, ({"network": net} if net else {}), True
    if layer in (None, "auto", "all"):
        return list(LAYERS.values()), {}, layer == "all"
    one = get_layer(layer)
    return [one], ({one.name: one.alone_options} if one.alone_options is not None else {}), True


def best_of(
    scene: Scene,
    layers: list,
    target: Target,
    chosen: bool,
    tried: dict | None = None,
    encoders: dict | None = None,
) -> Encoded:
    """The best file the layers give for the target, through the layer protocol.

    Below effort max, unless the caller chose the layers: cheapest layer first; after the first file
    that meets the target, a later layer codes only when its cheap ``estimate`` beats that file.
    Otherwise every layer encodes (registry order; ties keep the earlier), the best file is kept, and
    at effort max its layer may refine it (``improve``). A max-error target only goes to layers that
    bound the error.
    ``tried``, if given, receives each layer's outcome: its file's bpppb and PSNR, or its error.
    ``encoders``, if given, keeps each layer's encoder by name for a later call on the same scene
    (a second target then reuses e.g. the network's latent fit)."""
    if target.max_error is not None and not any(lay.bounds_error for lay in layers):
        raise OptionError(
            f"--max-error needs a layer that bounds every value's error ({', '.join(lay.name for lay in layers)} "
            "cannot)"
        )
    usable = [lay for lay in layers if lay.applicable(scene) and (target.max_error is None or lay.bounds_error)]
    if not usable:
        raise OptionError(
            "; ".join(f"the {lay.name} layer needs {lay.requires}" for lay in layers)
            if layers
            else "no coding layer is registered"
        )
    first_wins = not scene.thorough and not chosen
    order = sorted(usable, key=lambda lay: lay.cost) if first_wins else usable
    best: Encoded | None = None
    winner: tuple[Layer, object] | None = None
    errors: dict[str, OptionError] = {}
    for lay in order:
        enc = encoders.get(lay.name) if encoders is not None else None
        if enc is None:
            enc = lay.encoder(scene)
            if encoders is not None:
                encoders[lay.name] = enc
        if first_wins and best is not None:  # after the first file that met the target: only predicted winners
            guess = enc.estimate(target)
            if guess is None or not (guess > best.psnr if target.for_rate else guess < len(best.data)):
                continue
        try:
            cand = enc.encode(target)
        except OptionError as exc:  # this layer cannot meet the target: the next may
            errors[lay.name] = exc
            if tried is not None:
                tried[lay.name] = {"error": str(exc)}
            continue
        if tried is not None:
            tried[lay.name] = {"bpppb": 8.0 * len(cand.data) / scene.n_values, "psnr": cand.psnr}
        if best is None or target.better(cand, best):
            best, winner = cand, (lay, enc)
    if best is None or winner is None:
        if len(errors) == 1:
            raise next(iter(errors.values()))
        raise OptionError(
            "no coding layer meets the target: " + "; ".join(f"{n} layer: {e}" for n, e in errors.items())
        )
    if scene.thorough:
        better = winner[1].improve(target, best)  # type: ignore[attr-defined]
        if better is not None and target.better(better, best):
            best = better
    return best


def encode(
    cube: np.ndarray,
    model: CodecModel,
    *,
    bpppb: float | None = None,
    psnr: float | None = None,
    max_error: float | None = None,
    effort: str | int = "default",
    base_header: dict | None = None,
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
    backend: str = "auto",
    band_map=None,
    wavelengths=None,
    extra_sections: tuple = (),
    valid: np.ndarray | None = None,
    layer: str | None = None,
    latent_codings: tuple | None = None,
    or_smallest: bool = False,
    shared_spectral=None,
    post_filter: bool = False,
    synthesis: bool = False,
    learned_entropy: bool = False,
    recon_table: bool = True,
    map_options: dict | None = None,
) -> tuple[bytes, dict]:
    """Encode a (H, W, C) cube; returns the `.hsim` bytes and encoding statistics.

    No target: :data:`DEFAULT_BPPPB`, or the smallest file where no file is that small (the
    default never fails on a valid cube); ``or_smallest`` does the same for an explicit
    ``bpppb``. ``stats["target_fallback"]`` then says so (:data:`SMALLEST_FILE`; else None).

    ``layer``: a registered layer's name to code with it alone (None or "auto": the codec
    chooses per file). ``latent_codings`` (names of :data:`CODINGS`) restricts the layers and
    how the network's latents may be coded, for ablations.

    ``valid`` (bool, the cube's shape): the values the quality is measured on, when
    some were masked and filled in before encoding (the file's mask restores them).
    ``shared_spectral``: a :class:`~hsicodec.coding.shared.SharedSpectral` the map layer codes on (its
    files name it and carry no spectral stage of their own). ``learned_entropy``: the map layer's learned
    entropy model where it saves bytes (:mod:`hsicodec.layers.maps.lem`). ``synthesis``: its nonlinear
    synthesis where it pays at equal bits (:mod:`hsicodec.layers.maps.synthesis`). ``map_options``: extra
    options of the map layer, for ablations (``fill_budget``: refine its step to the byte budget as the learned
    model does; ``synthesis_model``: a :class:`~hsicodec.layers.maps.synthesis.SynthesisModel` the synthesis
    uses instead of the bundled one).
    """
    bpppb, psnr, max_error = one_target(bpppb, psnr, max_error)
    if max_error is not None and not (np.isfinite(max_error) and max_error >= 0):
        raise OptionError(f"--max-error must be a number >= 0, not {max_error}")
    if bpppb is not None and not (np.isfinite(bpppb) and bpppb > 0):
        raise OptionError(f"--bpppb must be a positive number, not {bpppb}")
    if psnr is not None and not (np.isfinite(psnr) and psnr > 0):
        raise OptionError(f"--psnr must be a positive number of dB, not {psnr}")
    default = bpppb is None and psnr is None and max_error is None
    if default:
        bpppb = DEFAULT_BPPPB
    target = Target(bpppb, psnr, max_error)
    fallback_ok = (default or or_smallest) and bpppb is not None
    cube = np.asarray(cube)
    if cube.ndim != 3 or min(cube.shape) < 1:
        raise OptionError(f"expected a (rows, cols, bands) cube, got shape {cube.shape}")
    if cube.dtype.kind == "f" and not np.all(np.isfinite(cube)):
        raise OptionError("the cube holds NaN or infinite values; mask them (nodata) before compressing")
    if cube.dtype.kind == "f" and cube.size and float(np.max(np.abs(cube))) > MAX_ABS_VALUE:  # integers never are
        raise OptionError(f"values beyond ±{MAX_ABS_VALUE:g} cannot be coded (their squared errors overflow)")
    t0 = time.perf_counter()
    inner_steps, adam_steps = effort_steps(effort, model)
    an = analyse(cube, model, band_map, wavelengths, spectral=max_error is None)  # bounds: value layers only
    layers, options, chosen = select_layers(layer, latent_codings)
    if shared_spectral is not None:  # the map layer codes on it (a tile or chunk of a larger whole)
        if shared_spectral.n_bands != cube.shape[2]:
            raise OptionError(
                f"the shared spectral stage has {shared_spectral.n_bands} bands, the cube {cube.shape[2]}"
            )
        options = {**options, "maps": {"shared": shared_spectral}}
    # the map layer's post filter, nonlinear synthesis and learned entropy model, each where it pays
    flags = {"post_filter": post_filter, "synthesis": synthesis, "learned_entropy": learned_entropy}
    maps_options = {k: True for k, on in flags.items() if on}
    if not recon_table:  # one offset ρ instead of the trained table (files for readers before grid version 9)
        maps_options["recon_table"] = False
    maps_options.update(map_options or {})  # ablations: e.g. {"fill_budget": True}, the step refined to the budget
    if maps_options:
        options = {**options, "maps": {**(options.get("maps") or {}), **maps_options}}
    scene = Scene(an, model, dict(base_header or {}), tuple(extra_sections), valid, inner_steps, adam_steps, threads,
                  backend, progress, options)  # fmt: skip
    tried: dict = {}
    encoders: dict = {}
    fallback = None
    try:
        best = _best_with_default_effort(scene, layers, target, chosen, tried, encoders, model)
    except OptionError:
        if not fallback_ok:
            raise
        # the rate is below the smallest file of every layer: the smallest file is the nearest reachable rate
        best = best_of(scene, layers, Target(psnr=-math.inf), True, tried, encoders)
        fallback = SMALLEST_FILE
    if progress:
        progress(1.0)
    stats = {
        "k": best.k,
        "q": best.step,
        "psnr": best.psnr,
        "bytes": len(best.data),
        "bpppb": 8.0 * len(best.data) / cube.size,
        "fit_seconds": 0.0,
        "inner_steps": inner_steps,
        "adam_steps": adam_steps if best.layer == "network" else 0,
        "layer": best.layer,
        "needs_model": LAYERS[best.layer].needs_model,
        "first_wins": not scene.thorough and not chosen,
        "layers_tried": tried,
        "target_bpppb": bpppb,
        "target_psnr": psnr,
        "target_max_error": max_error,  # the cheapest layer that met the target decided
        "target_default": default,  # no target given: the default rate
        "target_fallback": fallback,  # "smallest file": the rate target was below every file of this cube
        "effort_pass": best.stats.get("effort_pass", "max" if scene.thorough else "default"),
        **best.stats,
        "seconds": time.perf_counter() - t0,
    }
    return best.data, stats


def _best_with_default_effort(
    scene: Scene, layers: list, target: Target, chosen: bool, tried: dict, encoders: dict, model: CodecModel
) -> Encoded:
    """:func:`best_of` at the scene's effort; at effort max (rate and quality targets) the default
    effort's search competes too and the better file is kept.

    The thorough searches explore other operating points than the default ones (more spectral
    precisions, other rounding thresholds, RD-optimised quantization) and keep the few best by their
    *predicted* quality; where the prediction ranks wrongly, or every file it ranks first comes out
    over the budget, effort max lost to the default effort or missed a target it meets. Running the
    default search as well makes effort max a superset of the default effort (at the default effort's
    cost on top)."""
    if not scene.thorough or target.max_error is not None:  # error bounds: the same file at either effort
        return best_of(scene, layers, target, chosen, tried, encoders)
    thorough: Encoded | None = None
    error: OptionError | None = None
    try:
        thorough = best_of(scene, layers, target, chosen, tried, encoders)
    except OptionError as exc:
        error = exc
    inner, _ = effort_steps("default", model)
    plain = replace(scene, inner_steps=inner, adam_steps=0, progress=None)
    try:
        default = best_of(plain, layers, target, chosen)
    except OptionError:
        if thorough is None:
            assert error is not None
            raise error from None
        return thorough
    if thorough is None or target.better(default, thorough):
        default.stats = {**default.stats, "effort_pass": "default"}
        if tried is not None:
            tried[default.layer] = {"bpppb": 8.0 * len(default.data) / scene.n_values, "psnr": default.psnr,
                                    "effort": "default"}  # fmt: skip
        return default
    return thorough
