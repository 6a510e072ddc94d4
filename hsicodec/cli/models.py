"""``hsicodec models list|show|verify|add``: the installed base models."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hsicodec.cli.common import _CONTEXT, EXIT_ERROR, PROG, _human_bytes, _one_line, _print_json, _render, _shape_text


@click.group(context_settings=_CONTEXT)
def models() -> None:
    """List, inspect, verify and install base models.

    A base model is a .hsmodel file identified by the sha256 of its bytes; a .hsim file
    records the sha256 of the model that decodes it. Models are searched in: the models
    bundled with hsicodec, the user directory ($HSICODEC_DATA_DIR/models, or the
    platform's user data dir), then every directory or file listed in
    $HSICODEC_MODEL_PATH (separated by ':' on Unix, ';' on Windows).

    \b
    Examples:
      hsicodec models list
      hsicodec models show hsi-grid-v1
      hsicodec models add my-sensor.hsmodel
      hsicodec models verify
    """


def _registry():
    from hsicodec.models.registry import default_registry

    return default_registry()


def _entry_dict(e) -> dict:
    return {
        "sha256": e.sha256,
        "alias": e.alias,
        "size": e.size,
        "source": e.source,
        "path": str(e.path),
        "description": e.card.get("description") if isinstance(e.card, dict) else None,
    }


@models.command("list", context_settings=_CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (full sha256, alias, size, source, path).")
def models_list(as_json: bool) -> None:
    """List the installed base models, in search order.

    Columns: ID (first 12 hex digits of the sha256; any unique prefix of 8+ digits, or
    the alias, can name the model in --model), ALIAS, SIZE, SOURCE (bundled, user or
    path) and PATH. Invalid files are skipped here; 'hsicodec models verify' reports them.
    """
    reg = _registry()
    entries = reg.list()
    if as_json:
        _print_json([_entry_dict(e) for e in entries])
        return
    if not entries:
        click.echo(f"no models found; looked in: {reg.describe_locations()}", err=True)
        return
    rows = [("ID", "ALIAS", "SIZE", "SOURCE", "PATH")]
    rows += [(e.sha256[:12], e.alias or "-", _human_bytes(e.size), e.source, str(e.path)) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])


@models.command("show", context_settings=_CONTEXT)
@click.argument("ref", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the card, config and array list as JSON.")
def models_show(ref: str, as_json: bool) -> None:
    """Show one model: its card (alias, description, training data...), config and arrays.

    ID is an alias, a full sha256 or a unique prefix of 8+ hex digits.

    \b
    Example:
      hsicodec models show hsi-grid-v1
    """
    reg = _registry()
    entry = reg.resolve(ref)
    model = reg.load(entry.sha256)
    arrays = {name: {"shape": list(a.shape), "dtype": a.dtype.name} for name, a in sorted(model.arrays.items())}
    n_params = sum(int(a.size) for a in model.arrays.values())
    if as_json:
        d = _entry_dict(entry)
        d.pop("description", None)
        d.update({"card": model.card, "config": model.config, "arrays": arrays, "parameters": n_params})
        _print_json(d)
        return
    click.echo(f"id: {entry.sha256}")
    click.echo(f"alias: {entry.alias or '-'}")
    click.echo(f"path: {entry.path} ({entry.source})")
    click.echo(f"size: {entry.size:,} bytes ({_human_bytes(entry.size)}), {n_params:,} parameters")
    click.echo("card:" + ("" if model.card else " (empty)"))
    for line in _render(model.card, 1):
        click.echo(line)
    click.echo("config:" + ("" if model.config else " (empty)"))
    for line in _render(model.config, 1):
        click.echo(line)
    click.echo(f"arrays ({len(arrays)}):")
    width = max((len(n) for n in arrays), default=0)
    for name, a in arrays.items():
        click.echo(f"  {name:<{width}}  {a['dtype']:<8} {_shape_text(a['shape']) or 'scalar'}")


@models.command("verify", context_settings=_CONTEXT)
def models_verify() -> None:
    """Re-read and re-hash every model file; exit 1 if any is unreadable, invalid or misnamed.

    Each file gets one line: 'ok' or 'BAD' with the reason.
    """
    reg = _registry()
    results = reg.verify()
    if not results:
        click.echo(f"no model files found; looked in: {reg.describe_locations()}", err=True)
        return
    bad = 0
    for item, problem in results:
        path = getattr(item, "path", item)
        if problem is None:
            click.echo(f"ok   {item.sha256[:12]}  {item.alias or '-'}  {path}")
        else:
            bad += 1
            click.echo(f"BAD  {path}: {_one_line(problem)}")
    if bad:
        click.echo(f"{PROG}: error: {bad} of {len(results)} model file(s) failed verification", err=True)
        sys.exit(EXIT_ERROR)


@models.command("add", context_settings=_CONTEXT)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--force", "-f", is_flag=True, help="Replace a different (e.g. corrupt) file that already has the destination name."
)
def models_add(file: Path, force: bool) -> None:
    """Validate the model file FILE and install a copy in the user models directory.

    The copy is named <alias>-<sha256[:12]>.hsmodel. Installing a model that is already
    there does nothing. Prints the model's sha256 and where it was installed.

    \b
    Example:
      hsicodec models add my-sensor.hsmodel
    """
    entry = _registry().add(file, force=force)
    alias = f" ({entry.alias})" if entry.alias else ""
    click.echo(f"{entry.sha256}{alias} -> {entry.path}")
