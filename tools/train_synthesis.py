"""Meta-learn a shared nonlinear spectral synthesis on the training scenes (issue #21, point 2; offline).

python tools/train_synthesis.py [--features 4] [--shifts 8] [--act gelu|sine] [--target spectra|span]
    [--steps 1500] [--out PATH]

Design ("shared features, coded readout"): a pixel's first K_IN decoded principal-component maps, each
divided by its own standard deviation over the file (the decoder computes it; missing maps are zero),
go through a shared shift-modulated network g (two hidden layers of WIDTH, ``h_i = act(W_i h + b_i +
A_i s)``, s the file's S coded shifts) to D features F. The file codes D spectra W (D × C, the
least-squares readout of the file's residual on the centred features, coded like extra basis vectors)
and s; the decoded cube is the map layer's plus ``norm · (F − mean F) W``. This is variant (b) of the
brief: m = D extra spectra whose maps are predicted from the first maps instead of coded. With ``--target
span`` the readout is D × k coefficients on the file's own basis (variant (c): a nonlinear correction of
the coded components, far fewer bytes), and the training loss fits the residual's coordinates on it.

Meta-learning (CAVIA / Meta-SGD): per task (one training scene's default file at one rate, 2048 random
pixels), s starts at 0 and takes INNER steps with learned per-dimension step sizes on the task loss
``log(‖R − P_F R‖² / ‖R‖²)`` (R: the file's residual in normalised units, P_F the ridge projection onto
the centred features: the per-file readout in closed form); Adam on the shared weights through the
inner loop. Training scenes only (the model cards' list); validation scenes are never read here.

Tasks are built by running the default encoder (``compress(cube, bpppb=r)``) on every training scene
at every rate in RATES and are cached (``--cache``). Writes an ``.hsmodel`` (no pickle; arrays + config +
card) and prints the training loss. Seeded: the same command gives the same model on the same machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
K_IN = 8
WIDTH = 64
INNER = 3
RATES = (0.01, 0.02, 0.05, 0.1, 0.2)
RIDGE = 1e-4


def train_scenes() -> list[str]:
    """The training scenes of the bundled models' cards (the validation scenes are never among them)."""
    card = json.loads((ROOT / "hsicodec" / "models" / "hsi-grid-v1.json").read_text())
    val = set(card["val_scenes"])
    scenes = [s for s in card["train_scenes"] if s not in val]
    return scenes


def inputs(maps: np.ndarray) -> np.ndarray:
    """(N, K_IN) float32 network inputs of decoded maps (H, W, k): the decoder's own
    (:func:`hsicodec.layers.maps.synthesis.map_inputs`), so that training sees what decoding computes."""
    from hsicodec.layers.maps.synthesis import map_inputs

    return map_inputs(maps, K_IN)


def file_task(cube: np.ndarray, rate: float) -> dict:
    """The default file of ``cube`` at ``rate``: inputs U (N, K_IN), residual R (N, C) in normalised units, and
    the decoded parts (maps, mean, basis, norm) and file bytes."""
    from hsicodec.codec.cube import compress
    from hsicodec.layers.maps.stagefit import decoded_parts

    data = compress(cube, bpppb=rate, threads=1)
    parts = decoded_parts(data, cube.shape[2])
    if parts is None:
        raise RuntimeError("file on a shared spectral stage")
    maps, mean, basis, norm = parts
    x = cube.reshape(-1, cube.shape[2]).astype(np.float64)
    rec = norm * maps.reshape(-1, maps.shape[2]) @ basis + mean
    return {
        "u": inputs(maps),
        "r": (x - rec) / norm,
        "maps": maps,
        "mean": mean,
        "basis": basis,
        "norm": norm,
        "nbytes": len(data),
    }


def build_tasks(data_dir: Path, cache: Path, n_pix: int, seed: int, target: str = "spectra") -> list[dict]:
    """Training tasks (U, R) of every training scene × rate, n_pix random pixels each (cached as .npz); R is
    the residual in the band domain (``target`` "spectra") or its coordinates on the file's basis ("span")."""
    tasks = []
    rng = np.random.default_rng(seed)
    cache.mkdir(parents=True, exist_ok=True)
    for scene in train_scenes():
        cube = None
        for rate in RATES:
            path = cache / f"{scene}_{rate:g}.npz"
            if not path.exists() or "rb" not in np.load(path).files:
                cube = np.load(data_dir / f"{scene}.npy") if cube is None else cube
                t = file_task(cube, rate)
                rb = np.linalg.lstsq(t["basis"].T, t["r"].T, rcond=None)[0].T
                np.savez(path, u=t["u"], r=t["r"].astype(np.float32), rb=rb.astype(np.float32), k=t["maps"].shape[2])
            z = np.load(path)
            idx = rng.permutation(len(z["u"]))[:n_pix]
            tasks.append(
                {
                    "name": f"{scene}@{rate:g}",
                    "u": torch.tensor(z["u"][idx]),
                    "r": torch.tensor(z["rb" if target == "span" else "r"][idx]),
                    "k": int(z["k"]),
                }
            )
    return tasks


class SynthNet(torch.nn.Module):
    """g(u, s): K_IN inputs, S shifts added to both hidden layers' pre-activations, D linear outputs."""

    def __init__(self, n_feat: int, n_shift: int, act: str = "gelu", w0: float = 3.0) -> None:
        super().__init__()
        self.l1 = torch.nn.Linear(K_IN, WIDTH)
        self.l2 = torch.nn.Linear(WIDTH, WIDTH)
        self.out = torch.nn.Linear(WIDTH, n_feat)
        self.mod = torch.nn.Linear(n_shift, 2 * WIDTH, bias=False)
        self.log_lr = torch.nn.Parameter(torch.full((n_shift,), float(np.log(0.5))))
        self.act, self.w0, self.n_shift = act, w0, n_shift

    def _a(self, z: torch.Tensor, first: bool) -> torch.Tensor:
        if self.act == "sine":
            return torch.sin((self.w0 if first else 1.0) * z)
        return torch.nn.functional.gelu(z)

    def forward(self, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        b1, b2 = self.mod(s).split(WIDTH, dim=-1)
        h = self._a(self.l1(u) + b1, True)
        h = self._a(self.l2(h) + b2, False)
        return self.out(h)


def unexplained(f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """‖R − P R‖² / ‖R‖² for the ridge projection P onto the centred feature columns of f (N, D)."""
    f = f - f.mean(dim=0)
    g = f.T @ f
    g = g + RIDGE * (torch.trace(g) / g.shape[0] + 1e-12) * torch.eye(g.shape[0])
    fr = f.T @ r
    explained = (fr * torch.linalg.solve(g, fr)).sum()
    total = (r * r).sum()
    return (total - explained) / total


def adapt(net: SynthNet, u: torch.Tensor, r: torch.Tensor, steps: int, create_graph: bool) -> torch.Tensor:
    """CAVIA inner loop: the shifts s after ``steps`` steps from zero on log unexplained (learned step sizes)."""
    s = torch.zeros(net.n_shift, requires_grad=True)
    for _ in range(steps):
        loss = torch.log(unexplained(net(u, s), r))
        (grad,) = torch.autograd.grad(loss, s, create_graph=create_graph)
        s = s - torch.exp(net.log_lr) * grad
    return s


def train(tasks: list[dict], n_feat: int, n_shift: int, act: str, steps: int, seed: int, lr: float) -> SynthNet:
    """Meta-train g on the tasks; returns the net (mean log unexplained printed every 100 steps)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SynthNet(n_feat, n_shift, act)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    hist, t0 = [], time.time()
    for step in range(steps):
        loss = torch.zeros(())
        for i in rng.choice(len(tasks), 4, replace=False):
            t = tasks[i]
            sub = torch.tensor(rng.choice(len(t["u"]), 1024, replace=False))
            u, r = t["u"][sub], t["r"][sub]
            s = adapt(net, u, r, INNER, True)
            loss = loss + torch.log(unexplained(net(u, s), r)) / 4
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        hist.append(float(loss.detach()))
        if (step + 1) % 100 == 0:
            db = -10 * np.mean(hist[-100:]) / np.log(10)
            print(f"step {step + 1}: mean gain on the batch {db:+.3f} dB ({time.time() - t0:.0f} s)", flush=True)
    return net


VAL_RATES = (0.01, 0.02, 0.05, 0.1)


def validation(arrays: dict, config: dict, data_dir: Path) -> list[dict]:
    """The codec's default file and the file with this network's synthesis (``synthesis=True``, kept only
    where it measures better at the same size) on each validation scene at VAL_RATES: bpppb and PSNR."""
    import os
    import tempfile

    from hsicodec.models.modelfile import load_model, save_model
    from hsicodec.models.registry import ENV_MODEL_PATH, reset_default_registry

    with tempfile.TemporaryDirectory() as tmp:  # the files name the candidate: the decoder finds it here
        path = Path(tmp) / "candidate.hsmodel"
        save_model(path, arrays, config, {"alias": "synthesis-candidate"}, force=True)
        old = os.environ.get(ENV_MODEL_PATH)
        os.environ[ENV_MODEL_PATH] = tmp
        reset_default_registry()
        try:
            return _validation_rows(load_model(path), data_dir)
        finally:
            if old is None:
                os.environ.pop(ENV_MODEL_PATH, None)
            else:
                os.environ[ENV_MODEL_PATH] = old
            reset_default_registry()


def _validation_rows(mf, data_dir: Path) -> list[dict]:
    from hsicodec import metrics
    from hsicodec.codec.api import decompress, load_codec_model
    from hsicodec.codec.encode import encode
    from hsicodec.format.container import decode_hsim
    from hsicodec.layers.maps.synthesis import from_model_file

    model = from_model_file(mf)
    cm = load_codec_model("hsi-grid-v1")
    rows = []
    for scene in val_scenes():
        cube = np.load(data_dir / f"{scene}.npy")
        header = {"shape": [int(v) for v in cube.shape], "dtype": cube.dtype.name, "model": cm.sha256}
        for rate in VAL_RATES:
            row: dict = {"scene": scene, "rate": rate}
            for name, on in (("default", False), ("synthesis", True)):
                data, _ = encode(cube, cm, bpppb=rate, base_header=dict(header), threads=1, synthesis=on,
                                 map_options={"synthesis_model": model} if on else None)  # fmt: skip
                row[name] = {
                    "bpppb": round(8 * len(data) / cube.size, 6),
                    "psnr": round(float(metrics.psnr(cube, decompress(data)[0])), 3),
                }
            row["synthesis"]["kept"] = "ns" in decode_hsim(data).header["codec"]
            print(f"validation {scene} {rate:g}: {row}", flush=True)
            rows.append(row)
    return rows


def val_scenes() -> list[str]:
    return sorted(json.loads((ROOT / "hsicodec" / "models" / "hsi-grid-v1.json").read_text())["val_scenes"])


def save(
    net: SynthNet, path: Path, config: dict, alias: str | None = None, command: str = "", val: list | None = None
) -> str:
    """Write the net as an .hsmodel (float32 arrays, no pickle; the card gives the training and validation
    scenes and, with ``val``, the validation RD); returns its sha256."""
    from hsicodec.models.modelfile import save_model

    arrays = {name: p.detach().numpy().astype(np.float32) for name, p in net.state_dict().items()}
    card = {
        "alias": alias or "synthesis-offline",
        "description": "Nonlinear spectral synthesis of the coefficient-map layer (codec.ns, spec/hsim.md): a shared "
        "shift-modulated sine network over the first decoded maps; files code 8 shifts and a readout.",
        "command": command,
        "train_scenes": train_scenes(),
        "val_scenes": val_scenes(),
    }
    if val is not None:
        card["validation"] = val
    return save_model(path, arrays, config, card, force=True)


def load(path: Path) -> SynthNet:
    """The net of an .hsmodel written by :func:`save`."""
    from hsicodec.models.modelfile import load_model

    mf = load_model(path)
    cfg = mf.config
    net = SynthNet(int(cfg["features"]), int(cfg["shifts"]), str(cfg["act"]))
    net.load_state_dict({name: torch.tensor(np.array(a)) for name, a in mf.arrays.items()})
    return net


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=4)
    ap.add_argument("--shifts", type=int, default=8)
    ap.add_argument("--act", choices=("gelu", "sine"), default="gelu")
    ap.add_argument("--target", choices=("spectra", "span"), default="spectra", help="what the readout fits")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pixels", type=int, default=8192)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hsi")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hsicodec_synthesis_cache"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--alias", default=None, help="the model card's alias (hsi-synth-v1 for the shipped model)")
    ap.add_argument("--validate", action="store_true", help="measure the validation RD and write it into the card")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tasks = build_tasks(args.data, args.cache, args.pixels, args.seed, args.target)
    print(f"{len(tasks)} tasks from {len(train_scenes())} training scenes", flush=True)
    net = train(tasks, args.features, args.shifts, args.act, args.steps, args.seed, args.lr)
    suffix = "" if args.target == "spectra" else f"_{args.target}"
    out = args.out or args.cache / f"synth_d{args.features}_s{args.shifts}_{args.act}{suffix}.hsmodel"
    config = {
        "kind": "map-synthesis-siren",  # hsicodec.layers.maps.synthesis reads the kind, k_in, width, features,
        "w0": 3.0,  # shifts and w0; the rest records how the model was trained
        "features": args.features,
        "shifts": args.shifts,
        "act": args.act,
        "target": args.target,
        "k_in": K_IN,
        "width": WIDTH,
        "inner": INNER,
        "steps": args.steps,
        "lr": args.lr,
        "seed": args.seed,
        "pixels": args.pixels,
    }
    argv = sys.argv[1:]
    if "--out" in argv:  # the card names the training, not where this copy was written (same sha256 anywhere)
        i = argv.index("--out")
        argv = argv[:i] + argv[i + 2 :]
    command = "python tools/train_synthesis.py " + " ".join(argv)
    val = None
    if args.validate:
        arrays = {name: p.detach().numpy().astype(np.float32) for name, p in net.state_dict().items()}
        val = validation(arrays, config, args.data)
    print(f"wrote {out} (sha256 {save(net, out, config, args.alias, command, val)[:16]}, {out.stat().st_size} B)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
