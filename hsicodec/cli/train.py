"""``hsicodec train``: meta-train a new base model (needs torch)."""

from __future__ import annotations

from pathlib import Path

import click

from hsicodec.cli.common import _CONTEXT, _Progress, _stderr_is_tty
from hsicodec.errors import ModelFormatError, TrainingError


def _import_train():
    try:
        from hsicodec.train import meta as train_mod
    except ImportError as e:
        missing = getattr(e, "name", None) or ""
        if missing == "torch" or missing.startswith("torch.") or "torch" in str(e):
            raise TrainingError("training needs torch: pip install 'hsicodec[train]'") from None
        raise
    return train_mod


def _scene_name(name: str) -> str:
    return name[:-4] if name.lower().endswith(".npy") else name


@click.command(context_settings=_CONTEXT)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Folder of training cubes, each a (rows, cols, bands) .npy file. Required unless --config gives data_dir.",
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, metavar="MODEL.hsmodel", help="Model file to write."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    metavar="CONFIG.json",
    help="Training configuration (JSON with TrainConfig keys); the options below override it.",
)
@click.option(
    "--train",
    "train_names",
    multiple=True,
    metavar="NAME",
    help="Training scene (file name in DIR, with or without .npy); repeat for several. "
    "Default: the config's list, else every *.npy in DIR not given with --val.",
)
@click.option(
    "--val",
    "val_names",
    multiple=True,
    metavar="NAME",
    help="Held-out validation scene, never trained on; repeat for several.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Outer meta-training steps (default: config value, 2000).",
)
@click.option("--seed", type=int, default=None, metavar="N", help="Random seed (default: config value, 0).")
@click.option(
    "--alias",
    default=None,
    metavar="NAME",
    help="Short model name stored in the model card (letters, digits, . _ -). Default: OUT's stem.",
)
@click.option("--description", default="", metavar="TEXT", help="Free text for the model card.")
@click.option(
    "--resume",
    "checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    metavar="CHECKPOINT",
    help="Checkpoint file: training resumes from it if it exists, and it is rewritten "
    "every val_every steps (so an interrupted run can continue).",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite the model file if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary; print only the sha256.")
def train(
    data_dir: Path | None,
    out: Path,
    config_file: Path | None,
    train_names: tuple,
    val_names: tuple,
    steps: int | None,
    seed: int | None,
    alias: str | None,
    description: str,
    checkpoint: Path | None,
    force: bool,
    quiet: bool,
) -> None:
    """Meta-train a new base model on your own cubes (needs torch: pip install 'hsicodec[train]').

    Writes MODEL.hsmodel and prints its sha256 (the model id) on stdout. Install it with
    'hsicodec models add MODEL.hsmodel' to compress with it.

    \b
    Examples:
      hsicodec train --data cubes/ --out sensor.hsmodel --val scene7 --steps 20   # a trial run
      hsicodec train --config config.json --data cubes/ --out base.hsmodel   # TrainConfig keys as JSON
      hsicodec train --data cubes/ --out m.hsmodel --steps 20 --resume m.ckpt   # rerun to continue
      torchrun --standalone --nproc_per_node 2 -m hsicodec.cli train --config config.json --data cubes/ --out m.hsmodel

    Under torchrun, training is data-parallel (gloo): every process samples its own crops,
    the outer gradients are averaged each step (effective batch = processes x batch), and
    only rank 0 validates, writes the checkpoint and the model and prints.
    """
    from dataclasses import replace

    from hsicodec.io.atomic import check_writable
    from hsicodec.models.modelfile import check_alias

    if data_dir is None and config_file is None:
        raise click.UsageError("give --data DIR (or a --config that sets data_dir)")
    check_writable(out, force)  # before minutes of training
    if alias is None:
        alias = out.stem if out.suffix == ".hsmodel" else out.name
        try:
            check_alias(alias, "the default alias (the output file's stem)")
        except ModelFormatError as e:
            raise click.UsageError(f"{e}; pass --alias NAME") from None
    else:
        try:
            check_alias(alias, "--alias")
        except ModelFormatError as e:
            raise click.BadParameter(str(e), param_hint="'--alias'") from None

    tr = _import_train()
    cfg = tr.config_from_json(config_file) if config_file is not None else tr.TrainConfig()
    if data_dir is not None:
        cfg = replace(cfg, data_dir=str(data_dir))
    folder = Path(cfg.data_dir)
    if not folder.is_dir():
        raise TrainingError(f"training data folder {folder} does not exist or is not a folder")
    val = [_scene_name(n) for n in val_names] if val_names else list(cfg.val_scenes)
    if train_names:
        train_list = [_scene_name(n) for n in train_names]
    elif cfg.train_scenes:
        train_list = list(cfg.train_scenes)
    else:
        train_list = sorted(p.stem for p in folder.glob("*.npy") if p.is_file() and p.stem not in set(val))
    if not train_list:
        raise TrainingError(f"no training scenes: no *.npy files in {folder} besides the --val scenes")
    overlap = sorted(set(train_list) & set(val))
    if overlap:
        raise TrainingError(f"scenes both in training and validation: {', '.join(overlap)}")
    cfg = replace(cfg, train_scenes=train_list, val_scenes=val)
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if seed is not None:
        cfg = replace(cfg, seed=seed)

    if tr.process_rank() != 0:  # torchrun: only rank 0 prints
        quiet = True
    show = not quiet and _stderr_is_tty()
    if not quiet:
        click.echo(
            f"training {alias!r} on {len(train_list)} scene(s) from {folder} "
            f"({cfg.steps} steps, seed {cfg.seed}" + (f", validation: {', '.join(val)}" if val else "") + ")",
            err=True,
        )
    with _Progress(show, "train", total=cfg.steps, unit="step") as bar:

        def progress(step: int, rec: dict) -> None:
            loss = rec.get("loss")
            bar.set(step, **({"loss": f"{loss:.4g}"} if isinstance(loss, float) else {}))

        sha = tr.train_model(
            cfg, out, alias=alias, description=description, force=force, progress=progress, checkpoint=checkpoint
        )
    if sha is None:  # a torchrun process other than rank 0: rank 0 wrote the model
        return
    if not quiet:
        click.echo(f"wrote {out} (alias {alias}); install it with: hsicodec models add {out}", err=True)
    click.echo(sha)
