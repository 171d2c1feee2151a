"""Where the bundled front-end lives: `qvac_nb/static/<name>.js` and `.css`, built from `js/` by esbuild."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"


def esm(name: str) -> Path:
    return STATIC / f"{name}.js"


def css(name: str) -> Path:
    return STATIC / f"{name}.css"
