"""A `streamlit run app` server on a free port of 127.0.0.1, and the wait for its health check."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # `streamlit run app` runs from here


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start `streamlit run app` (output to `log`) and yield (the process, its URL); terminated on exit
    (killed after 20 s)."""
    port = free_port()
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port),
                                   "--server.address", "127.0.0.1", "--server.headless", "true",
                                   "--browser.gatherUsageStats", "false"],
                                  cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield server, f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, deadline: float, log: Path) -> float:
    """perf_counter() time at which streamlit's health check first answered.

    Raises:
        RuntimeError: the server exited, or did not answer before `deadline` (perf_counter() time).
    """
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}:\n{tail(log)}")
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return time.perf_counter()
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"streamlit did not answer within the time limit:\n{tail(log)}")


def tail(log: Path, n_chars: int = 2000) -> str:
    """The end of the server's log, for error messages."""
    return log.read_text(errors="replace")[-n_chars:]
