"""Files written whole or not at all.

Each write goes to a hidden temporary file in the target's folder, is flushed and fsynced, then
``os.replace``-d over the target (and the folder fsynced): a kill at any moment leaves the old
file or the new one, never a part of one. A kill mid-write may leave a ``.<name>.*.tmp`` file
beside the target; nothing reads those.

:func:`install_in_asv` makes asv's own JSON writer (results, benchmarks.json, machine files)
do the same inside asv's process.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()  # what open(path, "w") would give a new file


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing (``"w"`` or ``"wb"``) whose result appears at ``path``
    only when the block ends without an exception; the target's permissions are kept."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    target = Path(path)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        file_mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        file_mode = _NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        if "b" in mode:
            handle: IO[Any] = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode)  # mkstemp makes 0600; a site must stay readable
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; the path."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the path."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any, **dump_kwargs: Any) -> Path:
    """``json.dump(data, **dump_kwargs)`` to ``path`` atomically, ending in a newline."""
    with atomic_open(path, "w") as f:
        json.dump(data, f, **dump_kwargs)
        f.write("\n")
    return Path(path)


def _asv_write_json(
    path: str, data: Any, api_version: int | None = None, compact: bool = False
) -> None:
    """asv.util.write_json (asv 0.6), written atomically: same arguments, same bytes."""
    if api_version is not None:
        data = dict(data)
        data["version"] = api_version
    with atomic_open(os.path.abspath(path), "w", encoding="utf-8") as fd:
        if compact:
            json.dump(data, fd)
        else:
            json.dump(data, fd, indent=4, sort_keys=True)


def install_in_asv() -> None:
    """Make ``asv.util.write_json`` atomic in this process. asv saves a commit's results by
    rewriting its file in place (``Results.save``), so a kill during that save would lose the
    shards already in it; with this, the file holds either the old shards or all of them."""
    from asv import util

    if getattr(util.write_json, "__module__", None) != __name__:
        util.write_json = _asv_write_json
