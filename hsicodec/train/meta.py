"""Meta-learning of a base model (CAVIA / Meta-SGD through an inner loop on the latents).

Each training scene is reduced to its normalised principal-component maps
(see :mod:`hsicodec.coding.spectral`); the shared network learns to turn latent grids
into those maps. Outer step: sample random crops (flips, 90° rotations, random
component signs), start their latents at zero, take ``inner_steps`` SGD steps
with learned per-(level, channel) step sizes on the crop's squared error, and
update the shared parameters with Adam on the error after the last step.
Deterministic from ``seed`` (single-threaded torch ops are reproducible here).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hsicodec.coding.spectral import fit_pca
from hsicodec.errors import TrainingError
from hsicodec.layers.network.latents import LatentLayout
from hsicodec.layers.network.torchnet import GridSampler, ModSiren, coords_tensor

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
    out[:, : y.shape[1]] = y
    return out.reshape(h, w, n_out), fit.total_std


class InnerLoop(torch.nn.Module):
    """Learned per-(level, channel) inner-loop step sizes (Meta-SGD), stored as logs."""

    def __init__(self, layout: LatentLayout, init_lr: float, crop: int = 32):
        super().__init__()
        # a node's gradient sums over the pixels it covers: scale the first step size down accordingly
        self.log_lr = torch.nn.ParameterList(
            torch.nn.Parameter(torch.full((lv.channels,), math.log(init_lr * (lv.cell or crop) ** 2 / 64.0)))
            for lv in layout.levels
        )

    def lrs(self) -> list[np.ndarray]:
        return [p.detach().exp().numpy().astype(np.float32) for p in self.log_lr]


def zero_grids(layout: LatentLayout, batch: int, h: int, w: int, requires_grad: bool = True) -> list:
    return [
        torch.zeros(batch, *layout.grid_shape(i, h, w), lv.channels, requires_grad=requires_grad)
        for i, lv in enumerate(layout.levels)
    ]


def inner_fit(
    net: ModSiren,
    inner: InnerLoop,
    sampler: GridSampler,
    coords: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    steps: int,
    create_graph: bool,
) -> list:
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


def _load_scenes(cfg: TrainConfig) -> list:
    """The training scenes as (targets, channel mask) pairs."""
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
        scenes.append(
            (scene_targets(cube, cfg.n_out, cfg.spectral)[0], channel_mask(cube.shape[2], cfg.n_out, cfg.spectral))
        )
    return scenes


def data_rng(seed: int, start: int = 0, rank: int = 0) -> np.random.Generator:
    """The crop-sampling generator of one process from outer step ``start``.

    Rank 0 (and a single process) draws exactly the stream a single-process run
    draws; rank r > 0 gets its own stream (``[seed, start, r]`` never equals a rank-0
    seed, since numpy's SeedSequence pads entropy with zeros).
    """
    if rank == 0:
        return np.random.default_rng(seed if start == 0 else [seed, start])
    return np.random.default_rng([seed, start, rank])


def sample_batch(rng: np.random.Generator, scenes: list, cfg: TrainConfig) -> tuple:
    """One outer batch: (targets (B, crop, crop, n_out), loss weights (B, 1, 1, n_out))."""
    batch, masks = [], []
    for _ in range(cfg.batch):
        s, mask = scenes[int(rng.integers(len(scenes)))]
        r = int(rng.integers(s.shape[0] - cfg.crop + 1))
        c = int(rng.integers(s.shape[1] - cfg.crop + 1))
        batch.append(_augment(rng, s[r : r + cfg.crop, c : c + cfg.crop], cfg.spectral == "pca"))
        masks.append(mask)
    target = torch.from_numpy(np.stack(batch))
    weight = torch.from_numpy(np.stack(masks))[:, None, None, :] / (cfg.crop * cfg.crop)
    return target, weight


def outer_loss(
    net: ModSiren,
    inner: InnerLoop,
    sampler: GridSampler,
    coords: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    cfg: TrainConfig,
) -> torch.Tensor:
    """Meta-loss of a batch: the error after the inner loop, differentiable through it."""
    grids = inner_fit(net, inner, sampler, coords, target, weight, cfg.inner_steps, create_graph=True)
    pred = net(coords.expand(cfg.batch, -1, -1, -1), sampler(grids))
    return (((pred - target) ** 2) * weight).sum() / cfg.batch


def build_model(cfg: TrainConfig) -> tuple[ModSiren, InnerLoop]:
    """A freshly initialised network and inner loop (seeds torch with ``cfg.seed`` first)."""
    torch.manual_seed(cfg.seed)
    layout = cfg.layout()
    net = ModSiren(2, cfg.width, cfg.depth, layout.latent_dim, cfg.n_out, cfg.w0, cfg.w_hidden, cfg.shift, cfg.skip)
    return net, InnerLoop(layout, cfg.inner_lr, cfg.crop)


# --------------------------------------------------------------------------- data-parallel (torchrun)

DUMP_ENV = "HSICODEC_TRAIN_DUMP"
"""Debug: a folder where every process writes ``rank<R>.json`` (sha256 of its final parameters) and
``rank<R>.pt`` (the parameters) at the end of :func:`meta_train`."""


def torchrun_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when started by ``torchrun``, else None."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or "MASTER_ADDR" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as exc:
        raise TrainingError(f"bad torchrun environment (RANK / WORLD_SIZE / LOCAL_RANK): {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise TrainingError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


def process_rank() -> int:
    """This process's rank under torchrun (0 in a single process)."""
    env = torchrun_env()
    return env[0] if env is not None else 0


class _DataParallel:
    """The torch.distributed process group of a torchrun launch, and the gradient all-reduce.

    The outer loss is differentiated through the inner loop (``autograd.grad`` with
    ``create_graph``), which DistributedDataParallel does not support, so the outer
    gradients are averaged by hand: after ``backward`` every process packs its
    gradients (and its loss, for the log) into one flat buffer, one ``all_reduce``
    sums them and each process divides by the world size. Every process then clips
    and takes the same Adam step from the same state, so the parameters stay equal.
    """

    def __init__(self, rank: int, world: int, local_rank: int):
        import torch.distributed as dist

        self.dist, self.rank, self.world, self.local_rank = dist, rank, world, local_rank
        self.owned = False
        if not dist.is_available():
            raise TrainingError("this torch build has no torch.distributed: cannot train under torchrun")
        if not dist.is_initialized():
            # training runs on the CPU, so gloo; NCCL (GPU tensors only) can be forced for a GPU build
            backend = os.environ.get("HSICODEC_DDP_BACKEND", "gloo")
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
            self.owned = True
        if dist.get_world_size() != world or dist.get_rank() != rank:
            raise TrainingError("the process group does not match RANK / WORLD_SIZE")

    def broadcast_parameters(self, params: list) -> None:
        """Rank 0's initial parameters everywhere (they are equal already: same seed; this makes sure)."""
        with torch.no_grad():
            for p in params:
                self.dist.broadcast(p.data, src=0)

    def check_same(self, value: int, what: str) -> None:
        t = torch.tensor([value, -value], dtype=torch.int64)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        if int(t[0]) != -int(t[1]):
            raise TrainingError(
                f"{what} differs between the processes ({-int(t[1])} to {int(t[0])}); "
                "is the checkpoint on a file system every process sees?"
            )

    def average(self, params: list, loss: torch.Tensor) -> torch.Tensor:
        """Average the gradients of ``params`` (in place) and the loss over all processes."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0].dtype)])
        self.dist.all_reduce(flat, op=self.dist.ReduceOp.SUM)
        flat /= self.world
        i = 0
        for p in params:
            n = p.numel()
            p.grad = flat[i : i + n].view_as(p).clone()
            i += n
        return flat[i]

    def close(self, timeout: float = 60.0) -> None:
        """Leave the process group together: each process destroys its group, then waits (in the launch's
        store, which torchrun's agent holds) until every process has destroyed its own before it goes on to
        exit. A process that exited while a peer's gloo connections were still being torn down could abort
        that peer (``terminate called without an active exception``)."""
        if not (self.owned and self.dist.is_initialized()):
            return
        from torch.distributed import distributed_c10d

        store = distributed_c10d._get_default_store()
        self.dist.destroy_process_group()
        _wait_for_all(store, "hsicodec/closed", self.world, timeout)


def _wait_for_all(store, key: str, world: int, timeout: float) -> None:
    """Count this process in at ``key`` of a torch.distributed store and wait until ``world`` have, for at most
    ``timeout`` seconds. Best effort: a store that has gone (held by a process that left) ends the wait."""
    try:
        done = store.add(key, 1)
        end = time.monotonic() + timeout
        while done < world and time.monotonic() < end:
            time.sleep(0.01)
            done = store.add(key, 0)
    except (RuntimeError, OSError):  # the store's host is gone: nothing left to wait for
        pass


def _dump_parameters(net: ModSiren, inner: InnerLoop, rank: int, world: int, step: int) -> None:
    folder = os.environ.get(DUMP_ENV, "").strip()
    if not folder:
        return
    import hashlib

    state = {
        **{f"net.{k}": v for k, v in net.state_dict().items()},
        **{f"inner.{k}": v for k, v in inner.state_dict().items()},
    }
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    Path(folder).mkdir(parents=True, exist_ok=True)
    torch.save(state, Path(folder) / f"rank{rank}.pt")
    (Path(folder) / f"rank{rank}.json").write_text(
        json.dumps({"rank": rank, "world_size": world, "step": step, "sha256": h.hexdigest()})
    )


def _save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file, then rename: an interrupted save never leaves half a checkpoint."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def meta_train(
    cfg: TrainConfig, progress: Callable[[int, dict], None] | None = None, checkpoint: Path | None = None
) -> tuple[ModSiren, InnerLoop, list]:
    """Meta-train a base network; returns (network, inner-loop step sizes, history).

    Under ``torchrun`` (RANK / WORLD_SIZE / MASTER_ADDR set) it trains data-parallel:
    each process samples its own crops (:func:`data_rng`), the outer gradients are
    averaged over the processes every step (effective batch: world size × ``batch``),
    and only rank 0 validates, reports ``progress`` and writes the checkpoint; the
    returned history is rank 0's (empty elsewhere). A single process is unchanged.
    """
    env = torchrun_env()
    ddp = _DataParallel(*env) if env is not None else None
    try:
        result = _meta_train(cfg, progress, checkpoint, ddp)
        if ddp is not None:  # rank 0 validates last: the others wait for it before the group goes
            ddp.dist.barrier()
        return result
    finally:
        if ddp is not None:
            ddp.close()


def _meta_train(
    cfg: TrainConfig, progress: Callable[[int, dict], None] | None, checkpoint: Path | None, ddp: _DataParallel | None
) -> tuple[ModSiren, InnerLoop, list]:
    rank = ddp.rank if ddp is not None else 0
    torch.set_num_threads(cfg.threads)
    layout = cfg.layout()
    data_dir = Path(cfg.data_dir)
    scenes = _load_scenes(cfg)
    validation = [_validation_crop(data_dir, name, cfg) for name in cfg.val_scenes]  # every rank: same errors
    net, inner = build_model(cfg)
    rng = data_rng(cfg.seed, 0, rank)
    params = list(net.parameters()) + list(inner.parameters())
    if ddp is not None:
        ddp.broadcast_parameters(params)
    opt = torch.optim.Adam(params, lr=cfg.outer_lr)
    sampler = GridSampler(layout, cfg.crop, cfg.crop)
    coords = coords_tensor(layout, 0, cfg.crop, 0, cfg.crop, cfg.crop, cfg.crop)[None]
    start, history = 0, []
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, weights_only=True)
        net.load_state_dict(state["net"])
        inner.load_state_dict(state["inner"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
        rng = data_rng(cfg.seed, start, rank)
        torch.manual_seed(cfg.seed + start)
    if ddp is not None:
        ddp.check_same(start, "the checkpoint step to resume from")
    t0 = time.time()
    for step in range(start, cfg.steps):
        target, weight = sample_batch(rng, scenes, cfg)
        loss = outer_loss(net, inner, sampler, coords, target, weight, cfg)
        opt.zero_grad()
        loss.backward()
        if ddp is not None:
            loss = ddp.average(params, loss)
        if cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        opt.step()
        if rank != 0:
            continue
        rec = {"step": step + 1, "loss": float(loss.detach()), "elapsed_s": time.time() - t0}
        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps:
            for name, crop in zip(cfg.val_scenes, validation):
                rec[f"val_psnr_{name}"] = validate_crop(net, inner, layout, crop, cfg)
            history.append(rec)
        if progress is not None:
            progress(step + 1, rec)
        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps:
            if checkpoint is not None:
                _save_checkpoint(
                    checkpoint,
                    {
                        "net": net.state_dict(),
                        "inner": inner.state_dict(),
                        "opt": opt.state_dict(),
                        "step": step + 1,
                        "world_size": ddp.world if ddp is not None else 1,
                    },
                )
    _dump_parameters(net, inner, rank, ddp.world if ddp is not None else 1, cfg.steps)
    return net, inner, history


def _validation_crop(data_dir: Path, name: str, cfg: TrainConfig) -> tuple:
    """Centre crop of a held-out scene: (targets (1, s, s, n_out), σ_tot, range, bands, truncation MSE)."""
    p = data_dir / f"{name}.npy"
    if not p.exists():
        raise TrainingError(f"validation scene {p} not found")
    cube = load_scene(p)
    s = min(cfg.val_crop, cube.shape[0], cube.shape[1])
    r, c = (cube.shape[0] - s) // 2, (cube.shape[1] - s) // 2
    crop = cube[r : r + s, c : c + s]
    y, sig = scene_targets(crop, cfg.n_out, cfg.spectral)
    mask = channel_mask(crop.shape[2], cfg.n_out, cfg.spectral)
    trunc = 0.0
    if cfg.spectral == "pca":
        recon = y.reshape(-1, cfg.n_out)[:, : min(cfg.n_out, crop.shape[2])]
        fit = fit_pca(crop.reshape(-1, crop.shape[2]), cfg.n_out)
        resid = crop.reshape(-1, crop.shape[2]) - fit.mean - (recon * sig) @ fit.basis
        trunc = float(np.mean(resid**2))
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
    mse = float((((pred - target) ** 2) * mask).sum(-1).mean()) * sig**2 / bands + trunc
    return float(10 * np.log10(rng**2 / max(mse, 1e-30)))


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
    return {
        "arch": MODEL_ARCH,
        "n_in": 2,
        "width": cfg.width,
        "depth": cfg.depth,
        "n_out": cfg.n_out,
        "shift": cfg.shift,
        "latent": cfg.layout().to_config(),
        "inner_steps": cfg.inner_steps,
        "spectral": cfg.spectral,
        "train_crop": cfg.crop,
    }


def train_model(
    cfg: TrainConfig,
    out: Path,
    *,
    alias: str,
    description: str = "",
    force: bool = False,
    progress: Callable[[int, dict], None] | None = None,
    checkpoint: Path | None = None,
    validate: Callable | None = None,
) -> str | None:
    """Meta-train and write a base-model file; returns its sha256.

    Under ``torchrun`` only rank 0 writes the file (and returns its sha256); the
    other processes train with it and return None.
    """
    from hsicodec.models.modelfile import save_model

    t0 = time.time()
    env = torchrun_env()
    rank = env[0] if env is not None else 0
    net, inner, history = meta_train(cfg, progress, checkpoint)
    if rank != 0:
        return None
    card = {
        "alias": alias,
        "description": description,
        "train_scenes": list(cfg.train_scenes),
        "val_scenes": list(cfg.val_scenes),
        "train_config": asdict(cfg),
        "train_seconds": round(time.time() - t0, 1),
        "final_loss": history[-1]["loss"] if history else None,
        "bands": "any (per-scene PCA adaptation)" if cfg.spectral == "pca" else f"up to {cfg.n_out} (plain)",
        "history": history,
    }
    if env is not None:  # the result depends on the number of processes (effective batch, data streams)
        card["data_parallel"] = {"processes": env[1], "effective_batch": env[1] * cfg.batch}
    arrays = model_arrays(net, inner)
    config = model_config(cfg)
    if validate is not None:
        card["validation"] = validate(arrays, config)
    return save_model(out, arrays, config, card, force=force)


def validation_rd(
    arrays: dict, config: dict, data_dir: Path, scenes: list, rates: tuple = (0.01, 0.05, 0.1), effort: str = "default"
) -> list:
    """Rate–distortion of a freshly trained model on held-out scenes, for its model card.

    Each scene is compressed with the codec exactly as a user would (whole file
    counted) at each target rate.
    """
    from hsicodec.codec.decode import decode_sections
    from hsicodec.codec.encode import encode
    from hsicodec.format.container import decode_hsim
    from hsicodec.layers.network.model import codec_model
    from hsicodec.metrics import quality_report
    from hsicodec.models.modelfile import decode_model, encode_model

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
            out.append(
                {
                    "scene": name,
                    "target_bpppb": rate,
                    "bpppb": round(q["bpppb"], 5),
                    "psnr": round(float(q["psnr"]), 2),
                    "sam": round(float(q["sam"]), 3),
                    "effort": effort,
                }
            )
    return out
