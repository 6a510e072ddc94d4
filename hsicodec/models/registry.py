"""Content-addressed registry of base models.

A model's id is the sha256 (lower-case hex) of its ``.hsmodel`` file bytes; a
``.hsim`` file records the id of the model that decodes it.

Search order (first match wins for aliases and for duplicate ids):

1. ``bundled``: ``hsicodec/models/`` inside the installed package;
2. ``user``: ``$HSICODEC_DATA_DIR/models`` if ``HSICODEC_DATA_DIR`` is set and
   non-empty, else ``platformdirs.user_data_dir("hsicodec")/models``;
3. ``path``: every entry of ``HSICODEC_MODEL_PATH`` (``os.pathsep``-separated),
   each a directory of ``*.hsmodel`` files or a single model file.

Environment variables are read when a :class:`Registry` is constructed.

Integrity rule: **a file whose bytes do not hash to the requested id is never
used.** Every load re-reads and re-hashes the file. When a file that is named for
the requested id (``<name>-<sha256[:12]>.hsmodel`` or ``<sha256>.hsmodel``), or
that was listed under that id earlier, now hashes to something else,
:class:`ModelHashMismatchError` is raised (naming both hashes and the file); when
no file claims the id at all, :class:`ModelNotFoundError` is raised naming the id
and every location searched. Files that are unreadable or not valid model files
are skipped by :meth:`Registry.list` and reported by :meth:`Registry.verify`.

State: each Registry caches ``(path, mtime_ns, size, inode) -> sha256/card`` so
listing does not re-hash unchanged files; loaded models are cached module-wide by
sha256 (a small LRU; cached models were verified against their id when loaded).
"""

from __future__ import annotations

import builtins
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hsicodec.errors import (
    ModelError,
    ModelFormatError,
    ModelHashMismatchError,
    ModelNotFoundError,
    OutputExistsError,
)
from hsicodec.io.atomic import PathLike, write_bytes_atomic
from hsicodec.models.modelfile import (
    EXTENSION,
    ModelFile,
    decode_model,
    read_model_bytes,
    sha256_bytes,
)

__all__ = [
    "ENV_DATA_DIR",
    "ENV_MODEL_PATH",
    "ModelEntry",
    "Registry",
    "bundled_models_dir",
    "user_data_dir",
    "user_models_dir",
    "default_registry",
    "reset_default_registry",
    "clear_model_cache",
]

ENV_DATA_DIR = "HSICODEC_DATA_DIR"
ENV_MODEL_PATH = "HSICODEC_MODEL_PATH"
SOURCES = ("bundled", "user", "path")
MIN_PREFIX = 8

_SHA_RE = re.compile(r"[0-9a-f]{64}\Z")
_HEX_RE = re.compile(r"[0-9a-fA-F]+\Z")
_NAME_CLAIM_RE = re.compile(r"(?:.*-)?([0-9a-f]{12})\Z")
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")

_MODEL_CACHE_MAX = 8
_MODEL_CACHE: OrderedDict[str, ModelFile] = OrderedDict()
_MODEL_CACHE_LOCK = threading.Lock()


def bundled_models_dir() -> Path:
    """The directory of models shipped inside the package."""
    return Path(__file__).resolve().parent


def user_data_dir() -> Path:
    """hsicodec's per-user data dir (``$HSICODEC_DATA_DIR`` overrides platformdirs)."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("hsicodec"))


def user_models_dir() -> Path:
    """Where :meth:`Registry.add` installs models by default."""
    return user_data_dir() / "models"


def clear_model_cache() -> None:
    """Forget every loaded model (tests; or to free memory)."""
    with _MODEL_CACHE_LOCK:
        _MODEL_CACHE.clear()


def _cache_get(sha: str) -> ModelFile | None:
    with _MODEL_CACHE_LOCK:
        m = _MODEL_CACHE.get(sha)
        if m is not None:
            _MODEL_CACHE.move_to_end(sha)
        return m


def _cache_put(model: ModelFile) -> None:
    with _MODEL_CACHE_LOCK:
        _MODEL_CACHE[model.sha256] = model
        _MODEL_CACHE.move_to_end(model.sha256)
        while len(_MODEL_CACHE) > _MODEL_CACHE_MAX:
            _MODEL_CACHE.popitem(last=False)


def _claimed_id(path: Path) -> str | None:
    """The id (full, or 12-hex prefix) a file's name claims, if it follows a naming rule."""
    if path.suffix != EXTENSION:
        return None
    stem = path.stem.lower()
    if _SHA_RE.match(stem):
        return stem
    m = _NAME_CLAIM_RE.match(stem)
    return m.group(1) if m else None


def _short(sha: str) -> str:
    return sha[:12]


@dataclass(frozen=True)
class ModelEntry:
    """One valid model file found by the registry."""

    sha256: str
    path: Path
    source: str  # "bundled" | "user" | "path" (or a caller-defined label)
    size: int
    alias: str | None
    card: dict = field(compare=False, hash=False, repr=False)

    def describe(self) -> str:
        a = f" ({self.alias})" if self.alias else ""
        return f"{self.sha256}{a} [{self.source}] {self.path}"


@dataclass(frozen=True)
class _Probe:
    sha256: str | None
    size: int
    alias: str | None
    card: dict | None
    error: str | None


class Registry:
    """Finds, verifies and loads base models by sha256 id, id prefix or alias."""

    def __init__(self, locations: Sequence[tuple[str, PathLike]] | None = None):
        self._model_path_env: str | None
        if locations is None:
            locs: list[tuple[str, Path]] = [
                ("bundled", bundled_models_dir()),
                ("user", user_models_dir()),
            ]
            env = os.environ.get(ENV_MODEL_PATH)
            self._model_path_env = env
            if env:
                for part in env.split(os.pathsep):
                    if part.strip():
                        locs.append(("path", Path(part).expanduser()))
            self._default = True
        else:
            locs = [(str(s), Path(p)) for s, p in locations]
            self._model_path_env = None
            self._default = False
        self._locations = locs
        self._probes: dict[tuple[str, int, int, int], _Probe] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ locations

    def locations(self) -> builtins.list[tuple[str, Path]]:
        """The (source, path) pairs searched, in order."""
        return list(self._locations)

    def _user_dir(self) -> Path | None:
        for source, p in self._locations:
            if source == "user":
                return p
        return None

    def describe_locations(self) -> str:
        """Human text listing every location searched (used in error messages)."""
        parts = []
        for source, p in self._locations:
            note = "" if p.exists() else " (does not exist)"
            parts.append(f"{source} {p}{note}")
        if self._default:
            if self._model_path_env is None:
                parts.append(f"{ENV_MODEL_PATH} (unset)")
            elif not any(s == "path" for s, _ in self._locations):
                parts.append(f"{ENV_MODEL_PATH} (empty)")
        return ", ".join(parts) if parts else "(no locations)"

    def _candidate_files(self) -> builtins.list[tuple[str, Path]]:
        """Every file that may be a model, in search order, each real path once."""
        out: list[tuple[str, Path]] = []
        seen = set()
        for source, loc in self._locations:
            try:
                if loc.is_dir():
                    files = sorted(
                        p for p in loc.iterdir() if p.suffix == EXTENSION and not p.name.startswith(".") and p.is_file()
                    )
                elif loc.is_file():
                    files = [loc]
                else:
                    files = []
            except OSError:
                continue
            for p in files:
                try:
                    key = os.path.realpath(p)
                except OSError:  # pragma: no cover
                    key = str(p)
                if key in seen:
                    continue
                seen.add(key)
                out.append((source, p))
        return out

    # ------------------------------------------------------------ probing

    def _probe(self, path: Path, fresh: bool = False) -> _Probe:
        try:
            st = path.stat()
        except OSError as e:
            return _Probe(None, 0, None, None, f"cannot stat: {e.strerror or e}")
        key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, st.st_ino)
        if not fresh:
            with self._lock:
                hit = self._probes.get(key)
            if hit is not None:
                return hit
        try:
            data = read_model_bytes(path)
            sha = sha256_bytes(data)
            model = decode_model(data)
            probe = _Probe(sha, len(data), model.alias, model.card, None)
            del model, data
        except ModelError as e:
            probe = _Probe(None, st.st_size, None, None, str(e))
        with self._lock:
            # forget older states of the same file
            for k in [k for k in self._probes if k[0] == key[0]]:
                del self._probes[k]
            self._probes[key] = probe
        return probe

    def _forget(self, path: Path) -> None:
        rp = os.path.realpath(path)
        with self._lock:
            for k in [k for k in self._probes if k[0] == rp]:
                del self._probes[k]

    # ------------------------------------------------------------ queries

    def list(self) -> builtins.list[ModelEntry]:
        """Every valid model file found, in search order (invalid files are skipped)."""
        out = []
        for source, p in self._candidate_files():
            pr = self._probe(p)
            if pr.error is None:
                assert pr.sha256 is not None  # a probe without an error has its hash
                out.append(ModelEntry(pr.sha256, p, source, pr.size, pr.alias, pr.card or {}))
        return out

    def _not_found(self, what: str) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"{what} not found; looked in: {self.describe_locations()}."
            f" Install it with `hsicodec models add FILE`, or put it in a directory listed in"
            f" {ENV_MODEL_PATH}"
        )

    def resolve(self, ref: str) -> ModelEntry:
        """Find a model by full sha256, unique hex prefix (>= 8 chars) or alias.

        A full 64-hex ref is always an id. Otherwise an alias match wins (first in
        search order); else a hex ref of 8+ characters is an id prefix.
        """
        if not isinstance(ref, str) or not ref.strip():
            raise ModelNotFoundError("empty model reference (give a sha256, a prefix of 8+ hex digits, or an alias)")
        ref = ref.strip()
        entries = self.list()
        low = ref.lower()
        if _SHA_RE.match(low):
            for e in entries:
                if e.sha256 == low:
                    return e
            raise self._not_found(f"model {low}")
        for e in entries:
            if e.alias == ref:
                return e
        if _HEX_RE.match(ref):
            if len(ref) < MIN_PREFIX:
                raise ModelNotFoundError(
                    f"no model with alias {ref!r}; as an id prefix it is too short"
                    f" (give at least {MIN_PREFIX} hex digits)"
                )
            first: dict[str, ModelEntry] = {}
            for e in entries:
                if e.sha256.startswith(low):
                    first.setdefault(e.sha256, e)
            if len(first) == 1:
                return next(iter(first.values()))
            if len(first) > 1:
                cands = "; ".join(e.describe() for e in first.values())
                raise ModelNotFoundError(
                    f"model id prefix {ref!r} is ambiguous: it matches {len(first)} models: {cands}"
                )
        known = ", ".join(sorted({e.alias for e in entries if e.alias})) or "none"
        raise self._not_found(f"model {ref!r} (no id, id prefix or alias matches; known aliases: {known})")

    # ------------------------------------------------------------ loading

    def load(self, ref: str) -> ModelFile:
        """Resolve ``ref`` and load the model, re-hashing its bytes."""
        entry = self.resolve(ref)
        cached = _cache_get(entry.sha256)
        if cached is not None:
            return cached
        return self._load_verified(entry.sha256, [e for e in self.list() if e.sha256 == entry.sha256] or [entry])

    def load_by_hash(self, sha256: str) -> ModelFile:
        """Load the model with exactly this id (as recorded in a ``.hsim`` header)."""
        sha = sha256.strip().lower() if isinstance(sha256, str) else ""
        if not _SHA_RE.match(sha):
            raise ModelNotFoundError(f"model id {sha256!r} is not a sha256 (64 hex digits)")
        cached = _cache_get(sha)
        if cached is not None:
            return cached
        entries = [e for e in self.list() if e.sha256 == sha]
        if entries:
            return self._load_verified(sha, entries)
        # Nothing hashes to the id. Is a file *named* for it (tampered or corrupt)?
        impostors = []
        for _source, p in self._candidate_files():
            claim = _claimed_id(p)
            if claim and sha.startswith(claim):
                pr = self._probe(p)
                got = pr.sha256 if pr.error is None else f"an invalid file ({pr.error})"
                impostors.append(f"{p} hashes to {got}")
        if impostors:
            raise ModelHashMismatchError(
                f"model {sha} not found: {'; '.join(impostors)} — the file is named for this model"
                f" but its content has changed (corrupt or modified); refusing to use it."
                f" Looked in: {self.describe_locations()}"
            )
        raise self._not_found(f"model {sha}")

    def _load_verified(self, sha: str, entries: Sequence[ModelEntry]) -> ModelFile:
        problems = []
        for e in entries:
            try:
                data = read_model_bytes(e.path)
            except ModelError as err:
                self._forget(e.path)
                problems.append(f"{e.path}: {err}")
                continue
            actual = sha256_bytes(data)
            if actual != sha:
                self._forget(e.path)
                problems.append(f"{e.path} hashes to {actual}")
                continue
            try:
                model = decode_model(data)
            except ModelFormatError as err:  # pragma: no cover - same bytes were valid when listed
                problems.append(f"{e.path}: {err}")
                continue
            _cache_put(model)
            return model
        raise ModelHashMismatchError(
            f"model {sha}: no file with that content any more: {'; '.join(problems)}"
            " (modified or corrupt since it was listed); refusing to use it"
        )

    # ------------------------------------------------------------ install / check

    def add(self, file: PathLike, force: bool = False) -> ModelEntry:
        """Validate a model file and copy it into the user models directory.

        The copy is named ``<alias-or-sha12>-<sha256[:12]>.hsmodel`` and written
        atomically. Adding a model already present in the user directory is a
        no-op returning its entry. ``force`` replaces a different file that
        already has the destination name (e.g. a corrupted copy).
        """
        src = Path(file)
        data = read_model_bytes(src)
        try:
            model = decode_model(data)
        except ModelFormatError as e:
            raise ModelFormatError(f"{src}: {e}") from None
        sha = model.sha256
        user = self._user_dir()
        if user is None:
            raise ModelError("this registry has no 'user' location to add models to")
        for source, p in self._candidate_files():
            if source != "user" or p.parent != user:
                continue
            pr = self._probe(p)
            if pr.error is None and pr.sha256 == sha:
                try:
                    if sha256_bytes(read_model_bytes(p)) == sha:
                        return ModelEntry(sha, p, "user", pr.size, pr.alias, pr.card or {})
                except ModelError:
                    pass
                self._forget(p)
        stem = _SAFE_RE.sub("_", model.alias) if model.alias else _short(sha)
        dest = user / f"{stem}-{_short(sha)}{EXTENSION}"
        if dest.exists() and not force:
            raise OutputExistsError(
                f"{dest} exists but does not hold model {sha} (corrupt or modified?);"
                " pass --force (force=True) to replace it"
            )
        user.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, data, force=force)
        self._forget(dest)
        return ModelEntry(sha, dest, "user", len(data), model.alias, model.card)

    def verify(self) -> builtins.list[tuple[ModelEntry | Path, str | None]]:
        """Re-read, re-hash and re-validate every candidate file.

        Returns ``(entry, None)`` for a good model, ``(entry, text)`` for a valid
        model whose file name claims another id, and ``(path, text)`` for a file
        that cannot be read or is not a valid model.
        """
        out: list[tuple[ModelEntry | Path, str | None]] = []
        for source, p in self._candidate_files():
            pr = self._probe(p, fresh=True)
            if pr.error is not None:
                out.append((p, pr.error))
                continue
            assert pr.sha256 is not None  # a probe without an error has its hash
            entry = ModelEntry(pr.sha256, p, source, pr.size, pr.alias, pr.card or {})
            claim = _claimed_id(p)
            if claim and not pr.sha256.startswith(claim):
                out.append((entry, f"{p.name} is named for model {claim} but its content hashes to {pr.sha256}"))
            else:
                out.append((entry, None))
        return out


_DEFAULT: Registry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry with the default search order (created on first use)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Registry()
        return _DEFAULT


def load_by_id_prefix(ident: bytes, what: str) -> ModelFile:
    """The model a file names by the leading bytes ``ident`` of its sha256 (default registry: bundled, user
    directory, ``HSICODEC_MODEL_PATH``); a :class:`ModelError` that says it is the ``what`` the file needs
    and names the id where none is found (or only an alias that happens to look like the prefix)."""
    try:
        mf = default_registry().load(ident.hex())
    except ModelError as exc:
        raise type(exc)(f"the {what} {ident.hex()} this file needs: {exc}") from exc
    if not mf.sha256.startswith(ident.hex()):
        raise ModelError(f"no {what} with id prefix {ident.hex()}")
    return mf


def reset_default_registry() -> None:
    """Drop the default registry (re-reads the environment next time) and the model cache."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        _DEFAULT = None
    clear_model_cache()
