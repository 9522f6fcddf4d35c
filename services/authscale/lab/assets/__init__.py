"""Files the lab reads at run time: the gateway template, the Locust files and the page.

In a checkout, ``gateway`` and ``loadtests`` here are symbolic links to the top-level folders of
the same names; a wheel holds copies of them, so an installed ``authscale up`` or ``bench`` needs
no checkout. ``web`` is the tutorial's browser page itself (plain HTML, CSS and JavaScript
modules, no build step), which ``authscale up`` serves on its own origin (``lab.stack.web``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def path(*parts: str) -> Path:
    """The file at ``parts`` below this package, for tools that want a path (nginx, Locust)."""
    target = files(__name__).joinpath(*parts)
    # Installed from a wheel or a checkout, the package is a folder on disk, never a zip.
    return Path(str(target))
