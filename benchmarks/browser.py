"""Debian's headless chromium, the one browser the app benchmark and the browser tests drive (through
playwright; a downloaded browser is never used)."""
from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")  # Debian's build; a downloaded browser is never used
MAP = '.latent-map[data-map="corpus"][data-drawn]'  # a run's WebGL map (app/scatter.js) once it has drawn its points
LIVE_MAP = '.latent-map[data-map="live"][data-drawn]'  # a training's map of its latest epoch (`core.training.epoch_space`)
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",  # headless, offline, quiet
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")


def browser_unavailable() -> str | None:
    """Why no browser can be driven here, or None when one can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed"
    return None


def launch_chromium(playwright):
    """Headless `CHROMIUM` with `CHROMIUM_ARGS`, from a `sync_playwright()` context; close it when done."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))
