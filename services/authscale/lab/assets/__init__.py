"""Files the lab reads at run time: the gateway template and the Locust files.

In a checkout, ``gateway`` and ``loadtests`` here are symbolic links to the top-level folders of
the same names; a wheel holds copies of them, so an installed ``authscale up`` or ``bench`` needs
no checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def path(*parts: str) -> Path:
    """The file at ``parts`` below this package, for tools that want a path (nginx, Locust)."""
    target = files(__name__).joinpath(*parts)
    # Installed from a wheel or a checkout, the package is a folder on disk, never a zip.
    return Path(str(target))
