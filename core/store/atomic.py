"""Atomic writes and checksums: the two guarantees every storage module builds on.

Every file is written to a temporary name and then renamed into place, and completion markers are
written last, so a crash never leaves a file that is later trusted; a write the OS refuses (a full disk, a
read-only folder) raises `StoreWriteError`, naming the file, the reason and the room needed. Checksums catch what a crash
cannot: bytes changed after they were written (bit rot, an edit, a truncated copy). A completion
marker records the size and SHA-256 of each file it vouches for, and a checksum of its own content.
A mismatch raises `CorruptFileError` naming the file. Markers written before checksums existed (an
empty `COMPLETE`, JSON without digests) carry nothing to check and are trusted as they are. SHA-256
reads about 1 GB/s; a file is hashed once per process while its inode, size and timestamps stay the same.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from core.errors import UserError

COMPLETE = "COMPLETE"  # the completion marker of a folder (a run, a latent space), written last
_SELF_CHECKSUM = "marker_sha256"  # the key under which a checked JSON file records its own digest


class CorruptFileError(UserError, RuntimeError):
    """A stored file whose bytes differ from what was recorded when it was written.

    Attributes:
        path: the file.
        reason: what differs (size, SHA-256, an unreadable marker).
    """

    def __init__(self, path: Path, reason: str, hint: str = ""):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}" + (f"; {hint}" if hint else ""))


# what each way the OS refuses a write means to a user (`StoreWriteError`); any other OSError is a bug or a broken
# disk, and keeps its traceback
REFUSALS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EFBIG: "the file is larger than the file system allows",
            errno.EROFS: "the folder is read-only",
            errno.EACCES: "the folder is not writable (permission denied)",
            errno.EPERM: "the folder is not writable (operation not permitted)"}
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class StoreWriteError(UserError, OSError):
    """The OS refused to write a file of a store (a full disk, a quota, a read-only folder). The write went to a
    temporary name, so nothing already stored changed, and running the same command again once there is room
    finishes the work (a training resumes after its last finished epoch, an extraction extracts what it misses).

    Attributes:
        path: the file (or folder) being written.
        reason: why, in words (`REFUSALS`); `errno` is the OS's number (`errno.ENOSPC`, ...).
        size: bytes of the write that failed (0: a folder or a lock file).
        free: bytes free on that disk when it failed (None: unknown).
    """

    def __init__(self, path: Path, code: int, size: int = 0):
        self.path, self.size, self.reason = Path(path), size, REFUSALS[code]
        super().__init__(code, self.reason, str(path))  # errno, strerror and filename, as any OSError has them
        try:
            self.free: int | None = shutil.disk_usage(_existing(self.path)).free
        except OSError:
            self.free = None
        if code in _NO_SPACE:
            held = f"{format_bytes(size)} to write, " if size else ""
            free = "" if self.free is None else f"{format_bytes(self.free)} free"
            self.remedy = f"free at least {format_bytes(max(size, 1_000_000))} in {self.path.parent}"
            detail = f" ({held}{free})" if held or free else ""
        else:
            self.remedy, detail = f"make {self.path.parent} writable (or use another folder)", ""
        self.message = (f"cannot write {self.path}: {self.reason}{detail}; nothing already stored was changed: "
                        f"{self.remedy} and run the same command again (a training resumes after its last "
                        "finished epoch)")

    def __str__(self) -> str:  # OSError's own would be "[Errno 28] the disk is full: 'path'"
        return self.message

    def __reduce__(self):  # sent between the ranks of a job like any exception
        return type(self), (self.path, self.errno, self.size)


@contextlib.contextmanager
def reported_write(path: Path, size: int = 0) -> Iterator[None]:
    """Turn the OS refusing a write of `size` bytes to `path` (`REFUSALS`) into a `StoreWriteError`."""
    try:
        yield
    except StoreWriteError:
        raise
    except OSError as err:
        if err.errno not in REFUSALS:
            raise
        raise StoreWriteError(path, err.errno, size) from err


def _refusal_reason(err: OSError) -> str:
    """Why the OS refused a write, in words (`REFUSALS`), else its own words."""
    return REFUSALS.get(err.errno, err.strerror or str(err))


def format_bytes(n: int) -> str:
    """`n` bytes as a person reads them: "812 bytes", "3.4 kB", "1.2 MB", "2.0 GB" (powers of 1000, like df -H)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _existing(path: Path) -> Path:
    """The nearest folder of `path` that exists (whose disk `shutil.disk_usage` can measure)."""
    for folder in path.parents:
        if folder.exists():
            return folder
    return Path(".")


# --- atomic writes -------------------------------------------------------------------------------

def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename."""
    write_with_digest(Path(path), data, bytes_digest(data))


def write_with_digest(path: Path, data: bytes, digest: dict[str, Any]) -> None:
    """`atomic_write_bytes`, remembering `data`'s digest: the marker written next need not read it back.

    Raises:
        StoreWriteError: the OS refused the write (a full disk, a read-only folder); `path` is as it was.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    with reported_write(path, len(data)):  # outside the `finally`: the free space it reports is without the temporary
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())  # a full disk may say so only here (delayed allocation)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):  # never hides why the write failed
                tmp.unlink(missing_ok=True)
    _digests[os.path.abspath(path)] = (_stat_key(path.stat()), digest)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write_bytes(path, npy_bytes(array))


def atomic_torch_save(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, torch_bytes(obj))


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True, default=json_default).encode()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()


def parquet_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    return buffer.getvalue()


def torch_bytes(obj: Any) -> bytes:
    import torch  # here, not with the module: reading a store must not import torch (`core/__init__` says why)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_load(path: Path) -> Any:
    """What `torch_bytes` wrote, on the CPU: tensors and plain types only (`weights_only`, no pickled classes)."""
    import torch  # as in `torch_bytes`
    return torch.load(path, map_location="cpu", weights_only=True)


def json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


# --- checksums -----------------------------------------------------------------------------------

# Digests this process wrote or computed, by absolute path, valid while the file's (inode, size, mtime,
# ctime) is unchanged: the app reruns its script on every click and must not rehash a 1 GB pack each time.
_digests: dict[str, tuple[tuple[int, int, int, int], dict[str, Any]]] = {}


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def bytes_digest(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_digest(path: Path) -> dict[str, Any]:
    """`{"size": bytes, "sha256": hex}` of a file; hashed at most once per process while it is unchanged."""
    name = os.path.abspath(path)
    with open(name, "rb") as fh:
        key = _stat_key(os.fstat(fh.fileno()))  # of the file being read, even if replaced meanwhile
        cached = _digests.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = {"size": key[1], "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}
    _digests[name] = (key, digest)
    return digest


def file_digests(paths: list[Path]) -> dict[str, tuple[tuple[int, int, int, int], dict[str, Any]]]:
    """The digests of `paths` with the file states they were taken of, to hand to the other processes of a
    job (`adopt_digests`); each file hashed at most once per process. A file that has gone is left out."""
    out = {}
    for path in paths:
        try:
            file_digest(path)
        except FileNotFoundError:
            continue
        out[os.path.abspath(path)] = _digests[os.path.abspath(path)]
    return out


def known_digests() -> dict[str, tuple[tuple[int, int, int, int], dict[str, Any]]]:
    """Every digest this process holds (written or hashed), with the file states they were taken of."""
    return dict(_digests)


def adopt_digests(found: dict[str, tuple[tuple[int, int, int, int], dict[str, Any]]]) -> None:
    """Trust digests another process of this job took, for the files still in the state it hashed (the same
    inode, size, mtime and ctime): a torchrun job then reads each file once, not once per rank."""
    for name, (key, digest) in found.items():
        try:
            if _stat_key(os.stat(name)) == tuple(key):
                _digests[name] = (tuple(key), digest)
        except OSError:
            continue


def verify_file(path: Path, accepted: dict[str, Any] | list[dict[str, Any]] | None, hint: str = "") -> Path:
    """`path`, after checking it against its recorded digest (or any of several).

    Args:
        accepted: digest(s) from `_file_digest`; None when nothing was recorded (a file written before
            checksums existed), and then the file is trusted as it is.
        hint: what the user can do, appended to the error.

    Raises:
        CorruptFileError: the file is missing, or its size or SHA-256 differs from every accepted digest.
    """
    if accepted is None:
        return path
    accepted = [accepted] if isinstance(accepted, dict) else accepted
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptFileError(path, "missing, though recorded as written", hint) from None
    if size not in {d["size"] for d in accepted}:  # truncated or appended to: no need to read it
        expected = " or ".join(str(d["size"]) for d in accepted)
        raise CorruptFileError(path, f"{size} bytes where {expected} were written (truncated or overwritten)", hint)
    found = file_digest(path)["sha256"]
    if found not in {d["sha256"] for d in accepted}:
        expected = " or ".join(d["sha256"][:16] for d in accepted)
        raise CorruptFileError(path, f"changed since it was written (SHA-256 {found[:16]}…, recorded {expected}…)", hint)
    return path


def write_checked_json(path: Path, obj: dict[str, Any]) -> None:
    """JSON that records a SHA-256 of its own content, so an edited marker or journal is detected too."""
    body = json.loads(json.dumps(obj, default=json_default))  # exactly what a reader will parse
    atomic_write_json(path, {**body, _SELF_CHECKSUM: _json_sha256(body)})


def read_checked_json(path: Path, hint: str = "") -> dict[str, Any]:
    """The content of a `_write_checked_json` file. An empty file or one without a checksum was
    written by an earlier version (the old `COMPLETE` was empty) and is returned as it is.

    Raises:
        CorruptFileError: not a JSON object, or its content does not match its checksum.
    """
    try:
        text = path.read_text()
        obj = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(path, f"unreadable ({err})", hint) from None
    if not isinstance(obj, dict):
        raise CorruptFileError(path, "not a JSON object", hint)
    recorded = obj.pop(_SELF_CHECKSUM, None)
    if recorded is not None and recorded != _json_sha256(obj):
        raise CorruptFileError(path, "changed since it was written (its own checksum does not match)", hint)
    return obj


def _json_sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def write_marker(path: Path, files: Iterable[Path], fields: dict[str, Any] | None = None) -> None:
    """A completion marker: `fields`, plus the digest of each file (named relative to the marker's folder)."""
    digests = {p.relative_to(path.parent).as_posix(): file_digest(p) for p in files}
    write_checked_json(path, {**(fields or {}), "files": digests})


def verify_marker(path: Path, hint: str = "") -> dict[str, Any]:
    """A completion marker's fields, after checking every file it vouches for.

    Raises:
        CorruptFileError: the marker or one of its files changed since it was written.
    """
    marker = read_checked_json(path, hint)
    for name, digest in marker.get("files", {}).items():
        verify_file(path.parent / name, digest, hint)
    return marker


def discard(err: CorruptFileError, what: str, *paths: Path) -> None:
    """Warn that a corrupted cache entry is rebuilt, and delete it (its marker first). In a read-only store it
    stays, and is checked (and never trusted) again the next time."""
    warnings.warn(f"{err}: {what}", stacklevel=3)
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as refused:
            warnings.warn(f"{path} could not be deleted ({_refusal_reason(refused)})", stacklevel=3)
            return


def reserve_space(path: Path) -> None:
    """Allocate the whole of file `path` on its disk now: a file written through a memory map (a feature pack)
    would otherwise meet a full disk as a SIGBUS that kills the process without a word.

    Raises:
        OSError: ENOSPC when the disk has no room for it (to be reported by `reported_write`).
    """
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a file system that cannot: as before
                raise

