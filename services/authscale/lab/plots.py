"""Figures as PNG files made with matplotlib (no display needed): the lab's one way to draw."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only: no display on a server or in CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path) -> Path:
    """Lay ``figure`` out, write it to ``path`` and free it (pyplot keeps every open figure)."""
    figure.tight_layout()
    figure.savefig(path)
    pyplot().close(figure)
    return path
