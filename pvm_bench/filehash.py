"""Full-content fingerprints of the files that shape a run's inputs and weights.

Resume refuses to continue a run whose model, processor or adapter files changed, so every byte
counts: a fingerprint of only the first and last MiB of a weights file misses a tensor edited in
between. Files are hashed whole with xxHash's XXH3-128 (the ``xxhash`` package), which runs at
memory speed (several GB/s), far below the cost of loading the same weights into a model.

Digests are cached for the life of the process by ``(resolved path, size, mtime_ns, inode)``: a
file rewritten in place gets a new mtime, and the same weights loaded twice (judge, base
fingerprint of an attached adapter) are read once.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import xxhash

#: Recorded next to fingerprints (``fingerprint_scheme``): fingerprints of two schemes are not compared.
SCHEME = "xxh3-128-full"

_CHUNK = 4 << 20
_cache: dict[tuple[str, int, int, int], str] = {}

#: Files of a model directory that shape neither its inputs nor its weights. ``generation_config.json``
#: is compared on resume as resolved generation settings (runguard.generation_settings), by key.
IGNORED_MODEL_FILES = frozenset({"generation_config.json", "README.md", "LICENSE", "LICENSE.txt", "NOTICE",
                                 ".gitattributes", "USE_POLICY.md"})
#: Weight formats pvm-bench never loads (pickles, other frameworks' exports such as a repo's
#: ``original/consolidated.00.pth``): hashing them would cost seconds per GB for nothing.
IGNORED_MODEL_SUFFIXES = frozenset({".bin", ".pth", ".pt", ".ckpt", ".gguf", ".onnx", ".msgpack", ".h5", ".md"})


def file_digest(path: Path) -> str:
    """XXH3-128 (hex) of the whole content of the regular file ``path`` (cached, see module doc).

    Raises :class:`OSError` for a missing file; a path that is not a regular file (directory,
    FIFO, device) raises ``IsADirectoryError`` / ``OSError`` without being opened, so a FIFO
    never blocks.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        error = IsADirectoryError if stat.S_ISDIR(st.st_mode) else OSError
        raise error(f"{path} is {kind}")
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    h = xxhash.xxh3_128()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    digest = h.hexdigest()
    _cache[key] = digest
    return digest


def files_fingerprint(entries: Iterable[tuple[str, Path]]) -> tuple[str, dict[str, str]]:
    """``(fingerprint, {label: digest})`` over ``(label, file)`` pairs: the 16-hex fingerprint
    recorded in run.json and the per-file digests that let a refusal name the file that changed."""
    digests = {label: file_digest(path) for label, path in sorted(entries)}
    h = hashlib.sha256(SCHEME.encode())
    for label, digest in digests.items():
        h.update(f"\x00{label}\x00{digest}".encode())
    return h.hexdigest()[:16], digests


def tree_files(root: Path, ignore: frozenset[str] = frozenset(), ignore_suffixes: frozenset[str] = frozenset()
               ) -> list[tuple[str, Path]]:
    """``(relative path, file)`` for every regular file under ``root`` (or ``root`` itself when it is
    a file), skipping hidden entries (``.cache``, ``.lock``), names in ``ignore`` and suffixes in
    ``ignore_suffixes``."""
    if not root.is_dir():
        return [(root.name, root)]
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if (any(part.startswith(".") for part in rel.parts) or path.name in ignore or path.suffix in ignore_suffixes
                or not path.is_file()):
            continue
        out.append((rel.as_posix(), path))
    return out


def changed_files(old: dict[str, str] | None, new: dict[str, str] | None) -> list[str]:
    """Labels whose digest differs between two ``{label: digest}`` maps (added and removed included)."""
    if not old or not new:
        return []
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
