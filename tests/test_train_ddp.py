"""Data-parallel meta-training under torchrun (gloo, CPU).

Two real ``torchrun --nproc_per_node 2`` launches of ``hsicodec train`` (a fresh run
that writes a checkpoint, then a resumed run): both ranks must end with identical
parameters, only rank 0 prints and writes, and the result must equal an in-process
emulation of two ranks whose outer gradients are averaged — i.e. it differs from a
single-process run exactly by the second rank's crops. A world of one process (the
same code path, in-process) must be bit-identical to a plain single-process run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from hsicodec.layers.network.torchnet import GridSampler, coords_tensor  # noqa: E402
from hsicodec.models.modelfile import load_model, sha256_bytes  # noqa: E402
from hsicodec.train import meta as tr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    width=8,
    depth=2,
    n_out=6,
    levels=[[8, 2, "linear"], [4, 1, "linear"]],
    coord_cell=8,
    crop=16,
    batch=2,
    val_crop=16,
    skip=True,
    threads=1,
    val_every=2,
    inner_steps=2,
)

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp_data")
    rng = np.random.default_rng(0)
    for name, bands in (("a", 12), ("b", 9), ("c", 10)):
        ends = rng.uniform(0, 1000, size=(3, bands))
        ab = rng.dirichlet(np.ones(3), size=(40, 40))
        np.save(d / f"{name}.npy", (ab @ ends).astype(np.uint16))
    return d


def cfg_for(data, **kw) -> tr.TrainConfig:
    return tr.TrainConfig(
        **{**TINY, "data_dir": str(data), "train_scenes": ["a", "c"], "val_scenes": ["b"], "steps": 4, **kw}
    )


def flat_params(net, inner) -> dict:
    state = {
        **{f"net.{k}": v for k, v in net.state_dict().items()},
        **{f"inner.{k}": v for k, v in inner.state_dict().items()},
    }
    return {k: v.detach().clone() for k, v in state.items()}


def _grad(p):
    """The gradient the backward pass just left on parameter ``p``."""
    if p.grad is None:
        raise RuntimeError(f"a parameter of shape {tuple(p.shape)} got no gradient")
    return p.grad


def emulate(cfg, world: int, resume_at: int | None = None) -> dict:
    """What ``world`` data-parallel processes compute, in one process: per-rank batches, averaged gradients."""
    torch.set_num_threads(cfg.threads)
    scenes = tr._load_scenes(cfg)
    net, inner = tr.build_model(cfg)
    params = list(net.parameters()) + list(inner.parameters())
    opt = torch.optim.Adam(params, lr=cfg.outer_lr)
    layout = cfg.layout()
    sampler = GridSampler(layout, cfg.crop, cfg.crop)
    coords = coords_tensor(layout, 0, cfg.crop, 0, cfg.crop, cfg.crop, cfg.crop)[None]
    rngs = [tr.data_rng(cfg.seed, 0, r) for r in range(world)]
    for step in range(cfg.steps):
        if step == resume_at:  # a resumed run reseeds every rank's crop stream from the step
            rngs = [tr.data_rng(cfg.seed, step, r) for r in range(world)]
        total = None
        for r in range(world):
            target, weight = tr.sample_batch(rngs[r], scenes, cfg)
            opt.zero_grad()
            tr.outer_loss(net, inner, sampler, coords, target, weight, cfg).backward()
            g = torch.cat([_grad(p).reshape(-1) for p in params])
            total = g if total is None else total + g
        if total is None:
            raise ValueError(f"world must be at least 1, not {world}")
        total /= world
        i = 0
        for p in params:
            p.grad = total[i : i + p.numel()].view_as(p).clone()
            i += p.numel()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        opt.step()
    return flat_params(net, inner)


def torchrun_train(nproc: int, data: Path, tmp: Path, dump: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            tr.DUMP_ENV: str(dump),
            "HSICODEC_DATA_DIR": str(tmp / "userdata"),
            "HSICODEC_MODEL_PATH": str(tmp / "nomodels"),
        }
    )
    env.pop("HSICODEC_DEBUG", None)
    cfg_file = tmp / "tiny.json"
    cfg_file.write_text(json.dumps({**TINY, "train_scenes": ["a", "c"], "val_scenes": ["b"]}))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "hsicodec.cli",
        "train",
        "--data",
        str(data),
        "--config",
        str(cfg_file),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp)


def rank_dump(dump: Path, rank: int) -> tuple[dict, dict]:
    return json.loads((dump / f"rank{rank}.json").read_text()), torch.load(dump / f"rank{rank}.pt", weights_only=True)


def test_rank_streams():
    """Rank 0 draws the single-process stream; other ranks and resumed runs draw their own."""
    a = tr.data_rng(3, 0, 0).integers(1 << 30, size=8)
    assert np.array_equal(a, np.random.default_rng(3).integers(1 << 30, size=8))
    assert np.array_equal(
        tr.data_rng(3, 5, 0).integers(1 << 30, size=8), np.random.default_rng([3, 5]).integers(1 << 30, size=8)
    )
    draws = {
        tuple(tr.data_rng(s, st, r).integers(1 << 30, size=4)) for s in (0, 1) for st in (0, 1, 2) for r in (0, 1, 2)
    }
    assert len(draws) == 18


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_world_of_one_is_bit_identical_to_a_single_process(data, monkeypatch, tmp_path):
    cfg = cfg_for(data, steps=3)
    net, inner, hist = tr.meta_train(cfg)
    plain = flat_params(net, inner)
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        tr.DUMP_ENV: str(tmp_path / "dump"),
    }.items():
        monkeypatch.setenv(k, v)
    assert tr.torchrun_env() == (0, 1, 0)
    net1, inner1, hist1 = tr.meta_train(cfg)
    assert not dist.is_initialized()  # meta_train closes the group it opened
    one = flat_params(net1, inner1)
    assert all(torch.equal(plain[k], one[k]) for k in plain)
    assert [h["loss"] for h in hist] == [h["loss"] for h in hist1]
    info = json.loads((tmp_path / "dump" / "rank0.json").read_text())
    assert info["world_size"] == 1 and len(info["sha256"]) == 64


@pytest.mark.slow  # two torchrun launches: ~40 s on 2 cores, mostly process start-up
def test_torchrun_two_processes_and_resume(data, tmp_path):
    out, ck = tmp_path / "ddp.hsmodel", tmp_path / "ddp.ckpt"
    # 1) two fresh steps, checkpoint at step 2
    r = torchrun_train(
        2, data, tmp_path, tmp_path / "d1", "--out", str(out), "--steps", "2", "--resume", str(ck), "--quiet"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == [sha256_bytes(out.read_bytes())]  # only rank 0 prints (and writes)
    i0, p0 = rank_dump(tmp_path / "d1", 0)
    i1, p1 = rank_dump(tmp_path / "d1", 1)
    assert i0["sha256"] == i1["sha256"] and i0["world_size"] == 2
    assert all(torch.equal(p0[k], p1[k]) for k in p0)
    card = load_model(out).card
    assert card["data_parallel"] == {"processes": 2, "effective_batch": 4}
    assert [h["step"] for h in card["history"]] == [2]
    state = torch.load(ck, weights_only=True)
    assert state["step"] == 2 and state["world_size"] == 2

    # it is exactly two emulated ranks with averaged gradients ...
    expected = emulate(cfg_for(data, steps=2), world=2)
    for k in expected:
        assert torch.allclose(p0[k], expected[k], rtol=1e-5, atol=1e-7), k
    # ... and so differs from a single-process run (rank 1's crops count too)
    net, inner, _ = tr.meta_train(cfg_for(data, steps=2))
    single = flat_params(net, inner)
    assert not all(torch.equal(single[k], p0[k]) for k in single)

    # 2) resume from the checkpoint to step 4
    r = torchrun_train(
        2, data, tmp_path, tmp_path / "d2", "--out", str(out), "--steps", "4", "--resume", str(ck), "--quiet", "--force"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(r.stdout.split()) == 1
    i0, p0 = rank_dump(tmp_path / "d2", 0)
    i1, _ = rank_dump(tmp_path / "d2", 1)
    assert i0["sha256"] == i1["sha256"]
    assert [h["step"] for h in load_model(out).card["history"]] == [4]
    assert torch.load(ck, weights_only=True)["step"] == 4
    expected = emulate(cfg_for(data, steps=4), world=2, resume_at=2)
    for k in expected:
        assert torch.allclose(p0[k], expected[k], rtol=1e-5, atol=1e-7), k


def test_closing_waits_until_every_process_has_left_the_group():
    """_DataParallel.close counts each process out in the launch's store and waits for all of them (a process
    that exits while a peer still tears its group down can abort that peer); a missing peer ends the wait at
    the timeout, a store that has gone at once."""
    import threading
    import time

    store = dist.HashStore()
    done: list = []

    def leave(name: str) -> None:
        tr._wait_for_all(store, "closed", 2, 10.0)
        done.append(name)

    first = threading.Thread(target=leave, args=("first",))
    first.start()
    time.sleep(0.2)
    assert done == []  # waits for the second process
    leave("second")
    first.join(5.0)
    assert sorted(done) == ["first", "second"]
    t0 = time.monotonic()
    tr._wait_for_all(dist.HashStore(), "closed", 2, 0.3)  # the peer never comes
    assert 0.3 <= time.monotonic() - t0 < 5.0

    class Gone:
        def add(self, key, n):
            raise RuntimeError("connection reset by peer")

    t0 = time.monotonic()
    tr._wait_for_all(Gone(), "closed", 2, 30.0)
    assert time.monotonic() - t0 < 1.0
