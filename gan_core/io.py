"""Atomic file writes: a temp file in the same folder, fsync, os.replace. A crash leaves the old file."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def _read_umask() -> int:
    mask = os.umask(0o022)  # the umask can only be read by setting it: done once, at import, before any thread
    os.umask(mask)
    return mask


UMASK = _read_umask()


def plain_mode(path: str | os.PathLike) -> None:
    """Give a new file the permissions open() would have given it (0o666 less the umask). Some
    writers (safetensors) make their files readable by the owner alone, which locks others out of
    a model exported into a shared folder."""
    os.chmod(path, 0o666 & ~UMASK)


def fsync_dir(path: str | os.PathLike) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[str], None]) -> None:
    """Write `data` (bytes, or a function that writes to the path it is given) to `path` atomically.
    The file gets the permissions of the file it replaces, or those a plain open() would give a new
    one (not the owner-only ones of the temporary file it is written as)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = None  # a new file: the temporary one is created as open() creates files (the umask applies)
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0),
                 0o666)
    try:
        if callable(data):
            os.close(fd)
            fd = -1
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                fd = -1
                f.write(data)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:  # the writer may have replaced the temporary file with one of its own permissions
            plain_mode(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path` (links resolved) lies in `root`."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False
