"""Atomic file replacement: the host (or the ground) never reads half a file.

Write to a temporary file in the same directory, flush, fsync, ``os.replace`` over the
target, then fsync the directory so the rename itself survives a power cut.  If anything
fails (a full disk, an unwritable directory) the temporary file is removed and the
``OSError`` raised names the *target*, not the temporary file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def temp_path(path: Path) -> Path:
    """The temporary file :func:`write_atomic` uses for *path* in this process."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_atomic(path: str | os.PathLike, data: bytes, spare: str | os.PathLike | None = None) -> None:
    """Replace *path* with *data* atomically and durably.

    *spare*: an empty file kept in the same directory (:func:`keep_spare`) for when no inode
    is free: the temporary file cannot be made then, so the spare takes its name (a rename
    needs no inode) and is written instead; the replaced file's inode, freed, makes the next
    spare.  A file rewritten this way (the status) goes on being written with the inodes
    exhausted."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        fd = _open_temp(tmp, spare)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(path.parent)
    if spare is not None:
        keep_spare(spare)


def _open_temp(tmp: Path, spare: str | os.PathLike | None) -> int:
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        if exc.errno != errno.ENOSPC or spare is None or not os.path.isfile(spare):
            raise
    os.rename(spare, tmp)  # no inode free: the spare's becomes the temporary file
    return os.open(tmp, os.O_WRONLY | os.O_TRUNC)


def keep_spare(spare: str | os.PathLike) -> bool:
    """Make the empty spare file for :func:`write_atomic` if there is none (quietly: no
    inode, no spare - the next write frees one); True if there is one."""
    try:
        os.close(os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        pass
    except OSError:
        return False
    return True


def _unlink_quietly(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete temporary files :func:`write_atomic` left for *path* (a crash or power cut
    between write and rename); returns how many.  Call before the first write of a run."""
    path = Path(path)
    n = 0
    for tmp in path.parent.glob(f".{path.name}.tmp*"):
        try:
            tmp.unlink()
            n += 1
        except OSError:
            pass
    return n


def fsync_dir(directory: str | os.PathLike) -> None:
    """fsync a directory so renames and creations in it are durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def free_inodes(path: str | os.PathLike) -> int | None:
    """Inodes available to this user on the file system holding *path* (None if unknown)."""
    try:
        return os.statvfs(path).f_favail
    except OSError:
        return None


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes available to this user on the file system holding *path* (None if unknown)."""
    try:
        v = os.statvfs(path)
    except OSError:
        return None
    return v.f_bavail * v.f_frsize


def move_aside(path: Path) -> Path:
    """Rename *path* (something that is not a directory where one must be) to a free
    ``<name>.not-a-directory[.N]`` next to it; returns the new name.  Nothing is deleted."""
    path = Path(path)
    for k in range(1000):
        dest = path.with_name(path.name + ".not-a-directory" + (f".{k}" if k else ""))
        if not os.path.lexists(dest):
            os.rename(path, dest)
            return dest
    raise FileExistsError(f"cannot move {path} aside: too many earlier copies")
