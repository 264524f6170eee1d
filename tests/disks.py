"""A real small file system for the tests of full and read-only disks: a tmpfs mounted (as root, or with sudo where
it asks for no password, by the `small_disk` fixture of conftest), filled to the last byte, remounted read-only."""
import errno
import os
import subprocess
from pathlib import Path


def as_root(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]  # -n: never waits for a password
    return subprocess.run([*sudo, *command], capture_output=True, text=True, check=check)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill `disk` to the last byte, then give back `leave` bytes; returns the filler (delete it to free the room)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as err:
        assert err.errno == errno.ENOSPC, err
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(filler.stat().st_size - leave, 0))
    return filler
