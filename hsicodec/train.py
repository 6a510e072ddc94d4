"""Meta-learning of a base model (CAVIA / Meta-SGD through an inner loop on the latents).

Each training scene is reduced to its normalised principal-component maps
(see :mod:`hsicodec.spectral`); the shared network learns to turn latent grids
into those maps. Outer step: sample random crops (flips, 90° rotations, random
component signs), start their latents at zero, take ``inner_steps`` SGD steps
with learned per-(level, channel) step sizes on the crop's squared error, and
update the shared parameters with Adam on the error after the last step.
Deterministic from ``seed`` (single-threaded torch ops are reproducible here).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from hsicodec.errors import TrainingError
from hsicodec.latents import LatentLayout
from hsicodec.spectral import fit_pca
from hsicodec.torchnet import GridSampler, ModSiren, coords_tensor

DEFAULT_LEVELS = [[16, 8, "linear"], [8, 4, "linear"], [4, 2, "linear"], [2, 1, "linear"]]


@dataclass
class TrainConfig:
    """Everything that determines a trained base model (committed with shipped models)."""

    data_dir: str = "../shared/data/hsi"
    train_scenes: list = field(default_factory=list)
    val_scenes: list = field(default_factory=list)
    seed: int = 0
    width: int = 48
    depth: int = 3
    n_out: int = 16
    shift: str = "inside"
    skip: bool = False
    spectral: str = "pca"
    w0: float = 30.0
    w_hidden: float = 30.0
    levels: list = field(default_factory=lambda: [list(x) for x in DEFAULT_LEVELS])
    coord_cell: int = 16
    crop: int = 32
    batch: int = 8
    inner_steps: int = 3
    inner_lr: float = 0.5
    outer_lr: float = 3e-4
    steps: int = 2000
    val_every: int = 250
    val_crop: int = 64
    clip_grad: float = 1.0
    threads: int = 2

    def layout(self) -> LatentLayout:
        return LatentLayout.from_config({"levels": self.levels, "coord_cell": self.coord_cell})


def load_scene(path: Path) -> np.ndarray:
    """A training cube as float64 (rows, cols, bands), non-finite values replaced by band means."""
    a = np.load(path, allow_pickle=False).astype(np.float64)
    if a.ndim != 3:
        raise TrainingError(f"{path}: expected a 3-D (rows, cols, bands) array")
    bad = ~np.isfinite(a)
    if bad.any():
        means = np.nanmean(np.where(bad, np.nan, a), axis=(0, 1))
        a = np.where(bad, means[None, None, :], a)
    return a


def scene_targets(cube: np.ndarray, n_out: int, spectral: str = "pca") -> tuple[np.ndarray, float]:
    """Training targets (H, W, n_out) float32 and their normaliser.

    "pca": normalised principal-component maps, normaliser σ_tot. "id" (plain
    method): the bands scaled to [0, 1] on the first C outputs, normaliser the
    value range; outputs beyond C are zero (and masked by :func:`channel_mask`).
    """
    h, w, c = cube.shape
    if spectral == "id":
        if c > n_out:
            raise TrainingError(f"a cube with {c} bands does not fit a model with {n_out} outputs")
        lo, rng = float(cube.min()), float(cube.max() - cube.min()) or 1.0
        out = np.zeros((h, w, n_out), np.float32)
        out[:, :, :c] = (cube - lo) / rng
        return out, rng
    fit = fit_pca(cube.reshape(-1, c), n_out)
    y = (cube.reshape(-1, c) - fit.mean) @ fit.basis.T / fit.total_std
    out = np.zeros((h * w, n_out), np.float32)
    out[:, :y.shape[1]] = y
    return out.reshape(h, w, n_out), fit.total_std


class InnerLoop(torch.nn.Module):
    """Learned per-(level, channel) inner-loop step sizes (Meta-SGD), stored as logs."""

    def __init__(self, layout: LatentLayout, init_lr: float, crop: int = 32):
        super().__init__()
        # a node's gradient sums over the pixels it covers: scale the first step size down accordingly
        self.log_lr = torch.nn.ParameterList(
            torch.nn.Parameter(torch.full((lv.channels,), math.log(init_lr * (lv.cell or crop) ** 2 / 64.0)))
            for lv in layout.levels)

    def lrs(self) -> list[np.ndarray]:
        return [p.detach().exp().numpy().astype(np.float32) for p in self.log_lr]


def zero_grids(layout: LatentLayout, batch: int, h: int, w: int, requires_grad: bool = True) -> list:
    return [torch.zeros(batch, *layout.grid_shape(i, h, w), lv.channels, requires_grad=requires_grad)
            for i, lv in enumerate(layout.levels)]


def inner_fit(net: ModSiren, inner: InnerLoop, sampler: GridSampler, coords: torch.Tensor, target: torch.Tensor,
              weight: torch.Tensor, steps: int, create_graph: bool) -> list:
    """Run the meta-learned inner loop from zero latents; returns the adapted grids."""
    b = target.shape[0]
    grids = zero_grids(sampler.layout, b, sampler.h, sampler.w)
    for _ in range(steps):
        pred = net(coords.expand(b, -1, -1, -1), sampler(grids))
        loss = (((pred - target) ** 2) * weight).sum()
        grads = torch.autograd.grad(loss, grids, create_graph=create_graph)
        grids = [g - lr.exp() * gr for g, lr, gr in zip(grids, inner.log_lr, grads)]
    return grids


def _augment(rng: np.random.Generator, crop: np.ndarray, flip_signs: bool) -> np.ndarray:
    k = int(rng.integers(4))
    crop = np.rot90(crop, k, axes=(0, 1))
    if rng.integers(2):
        crop = crop[:, ::-1]
    if flip_signs:  # principal components have no preferred sign
        crop = crop * rng.choice([-1.0, 1.0], size=crop.shape[2]).astype(np.float32)
    return np.ascontiguousarray(crop)


def channel_mask(n_bands: int, n_out: int, spectral: str) -> np.ndarray:
    """Loss weight of every output for a scene: outputs a cube does not have are ignored."""
    m = np.ones(n_out, np.float32)
    if spectral == "id":
        m[n_bands:] = 0.0
    return m


def meta_train(cfg: TrainConfig, progress: Optional[Callable[[int, dict], None]] = None,
               checkpoint: Optional[Path] = None) -> tuple[ModSiren, InnerLoop, list]:
    """Meta-train a base network; returns (network, inner-loop step sizes, history)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    layout = cfg.layout()
    data_dir = Path(cfg.data_dir)
    if not cfg.train_scenes:
        raise TrainingError("no training scenes given")
    scenes = []
    for name in cfg.train_scenes:
        p = data_dir / f"{name}.npy"
        if not p.exists():
            raise TrainingError(f"training scene {p} not found")
        cube = load_scene(p)
        if min(cube.shape[:2]) < cfg.crop:
            raise TrainingError(f"{p}: smaller than the {cfg.crop}-pixel training crop")
        scenes.append((scene_targets(cube, cfg.n_out, cfg.spectral)[0],
                       channel_mask(cube.shape[2], cfg.n_out, cfg.spectral)))
    validation = [_validation_crop(data_dir, name, cfg) for name in cfg.val_scenes]
    net = ModSiren(2, cfg.width, cfg.depth, layout.latent_dim, cfg.n_out, cfg.w0, cfg.w_hidden, cfg.shift, cfg.skip)
    inner = InnerLoop(layout, cfg.inner_lr, cfg.crop)
    opt = torch.optim.Adam(list(net.parameters()) + list(inner.parameters()), lr=cfg.outer_lr)
    sampler = GridSampler(layout, cfg.crop, cfg.crop)
    coords = coords_tensor(layout, 0, cfg.crop, 0, cfg.crop, cfg.crop, cfg.crop)[None]
    start, history = 0, []
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, weights_only=True)
        net.load_state_dict(state["net"])
        inner.load_state_dict(state["inner"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
        rng = np.random.default_rng([cfg.seed, start])
        torch.manual_seed(cfg.seed + start)
    t0 = time.time()
    for step in range(start, cfg.steps):
        batch, masks = [], []
        for _ in range(cfg.batch):
            s, mask = scenes[int(rng.integers(len(scenes)))]
            r = int(rng.integers(s.shape[0] - cfg.crop + 1))
            c = int(rng.integers(s.shape[1] - cfg.crop + 1))
            batch.append(_augment(rng, s[r:r + cfg.crop, c:c + cfg.crop], cfg.spectral == "pca"))
            masks.append(mask)
        target = torch.from_numpy(np.stack(batch))
        weight = torch.from_numpy(np.stack(masks))[:, None, None, :] / (cfg.crop * cfg.crop)
        grids = inner_fit(net, inner, sampler, coords, target, weight, cfg.inner_steps, create_graph=True)
        pred = net(coords.expand(cfg.batch, -1, -1, -1), sampler(grids))
        loss = (((pred - target) ** 2) * weight).sum() / cfg.batch
        opt.zero_grad()
        loss.backward()
        if cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(list(net.parameters()) + list(inner.parameters()), cfg.clip_grad)
        opt.step()
        rec = {"step": step + 1, "loss": float(loss.detach()), "elapsed_s": time.time() - t0}
        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps:
            for name, crop in zip(cfg.val_scenes, validation):
                rec[f"val_psnr_{name}"] = validate_crop(net, inner, layout, crop, cfg)
            history.append(rec)
        if progress is not None:
            progress(step + 1, rec)
        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps:
            if checkpoint is not None:
                torch.save({"net": net.state_dict(), "inner": inner.state_dict(), "opt": opt.state_dict(),
                            "step": step + 1}, checkpoint)
    return net, inner, history


def _validation_crop(data_dir: Path, name: str, cfg: TrainConfig) -> tuple:
    """Centre crop of a held-out scene: (targets (1, s, s, n_out), σ_tot, range, bands, truncation MSE)."""
    p = data_dir / f"{name}.npy"
    if not p.exists():
        raise TrainingError(f"validation scene {p} not found")
    cube = load_scene(p)
    s = min(cfg.val_crop, cube.shape[0], cube.shape[1])
    r, c = (cube.shape[0] - s) // 2, (cube.shape[1] - s) // 2
    crop = cube[r:r + s, c:c + s]
    y, sig = scene_targets(crop, cfg.n_out, cfg.spectral)
    mask = channel_mask(crop.shape[2], cfg.n_out, cfg.spectral)
    trunc = 0.0
    if cfg.spectral == "pca":
        recon = y.reshape(-1, cfg.n_out)[:, :min(cfg.n_out, crop.shape[2])]
        fit = fit_pca(crop.reshape(-1, crop.shape[2]), cfg.n_out)
        resid = crop.reshape(-1, crop.shape[2]) - fit.mean - (recon * sig) @ fit.basis
        trunc = float(np.mean(resid ** 2))
    return torch.from_numpy(y)[None], sig, float(crop.max() - crop.min()), crop.shape[2], trunc, torch.from_numpy(mask)


def validate_crop(net: ModSiren, inner: InnerLoop, layout: LatentLayout, crop: tuple, cfg: TrainConfig) -> float:
    """PSNR (dB, band space) of the meta-learned inner loop on a held-out crop, unquantized."""
    target, sig, rng, bands, trunc, mask = crop
    s = target.shape[1]
    sampler = GridSampler(layout, s, s)
    coords = coords_tensor(layout, 0, s, 0, s, s, s)[None]
    weight = mask[None, None, None, :] / (cfg.crop * cfg.crop)
    grids = inner_fit(net, inner, sampler, coords, target, weight, cfg.inner_steps, create_graph=False)
    with torch.no_grad():
        pred = net(coords, sampler(grids))
    mse = float((((pred - target) ** 2) * mask).sum(-1).mean()) * sig ** 2 / bands + trunc
    return float(10 * np.log10(rng ** 2 / max(mse, 1e-30)))


def config_from_json(path: Path) -> TrainConfig:
    """Read a committed training config."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot read training config {path}: {exc}") from exc
    unknown = set(d) - set(asdict(TrainConfig()))
    if unknown:
        raise TrainingError(f"unknown training config keys: {sorted(unknown)}")
    return TrainConfig(**d)


MODEL_ARCH = "modsiren-grid"


def model_arrays(net: ModSiren, inner: InnerLoop) -> dict:
    """Named float32 arrays of a trained model (frequencies folded in)."""
    w = net.export()
    arrays = {}
    for i, (a, b) in enumerate(zip(w.hidden_w, w.hidden_b)):
        arrays[f"hidden.{i}.weight"] = a
        arrays[f"hidden.{i}.bias"] = b
    arrays.update({"out.weight": w.out_w, "out.bias": w.out_b, "meta.weight": w.meta_w, "meta.bias": w.meta_b})
    if w.skip_w is not None:
        arrays["skip.weight"] = w.skip_w
    for i, lr in enumerate(inner.lrs()):
        arrays[f"inner.lr.{i}"] = lr
    return arrays


def model_config(cfg: TrainConfig) -> dict:
    """The architecture part of a model file's config."""
    return {"arch": MODEL_ARCH, "n_in": 2, "width": cfg.width, "depth": cfg.depth, "n_out": cfg.n_out,
            "shift": cfg.shift, "latent": cfg.layout().to_config(), "inner_steps": cfg.inner_steps,
            "spectral": cfg.spectral, "train_crop": cfg.crop}


def train_model(cfg: TrainConfig, out: Path, *, alias: str, description: str = "", force: bool = False,
                progress: Optional[Callable[[int, dict], None]] = None, checkpoint: Optional[Path] = None,
                validate: Optional[Callable] = None) -> str:
    """Meta-train and write a base-model file; returns its sha256."""
    from hsicodec.modelfile import save_model

    t0 = time.time()
    net, inner, history = meta_train(cfg, progress, checkpoint)
    card = {"alias": alias, "description": description, "train_scenes": list(cfg.train_scenes),
            "val_scenes": list(cfg.val_scenes), "train_config": asdict(cfg), "train_seconds": round(time.time() - t0, 1),
            "final_loss": history[-1]["loss"] if history else None,
            "bands": "any (per-scene PCA adaptation)" if cfg.spectral == "pca" else f"up to {cfg.n_out} (plain)",
            "history": history}
    arrays = model_arrays(net, inner)
    config = model_config(cfg)
    if validate is not None:
        card["validation"] = validate(arrays, config)
    return save_model(out, arrays, config, card, force=force)


def validation_rd(arrays: dict, config: dict, data_dir: Path, scenes: list,
                  rates: tuple = (0.01, 0.05, 0.1), effort: str = "default") -> list:
    """Rate–distortion of a freshly trained model on held-out scenes, for its model card.

    Each scene is compressed with the codec exactly as a user would (whole file
    counted) at each target rate.
    """
    from hsicodec.encoder import encode
    from hsicodec.decoder import decode_sections
    from hsicodec.container import decode_hsim
    from hsicodec.metrics import quality_report
    from hsicodec.model import codec_model
    from hsicodec.modelfile import decode_model, encode_model

    cm = codec_model(decode_model(encode_model(arrays, config, {})))
    out = []
    for name in scenes:
        cube = np.load(Path(data_dir) / f"{name}.npy", allow_pickle=False)
        for rate in rates:
            header = {"shape": list(cube.shape), "dtype": cube.dtype.name, "model": cm.sha256}
            data, _ = encode(cube, cm, bpppb=rate, effort=effort, base_header=header)
            f = decode_hsim(data)
            rec = decode_sections(f.header, f.sections.__getitem__, cm)
            q = quality_report(cube, rec, len(data))
            out.append({"scene": name, "target_bpppb": rate, "bpppb": round(q["bpppb"], 5),
                        "psnr": round(float(q["psnr"]), 2), "sam": round(float(q["sam"]), 3), "effort": effort})
    return out
