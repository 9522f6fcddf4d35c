"""The lock files under deploy/ (written by deploy/lock.sh) agree with pyproject.toml, with the
script and with each other, and the Makefile installs nothing unlocked: the image installs
requirements.lock, `make up` lab-requirements.lock, `make test` dev-requirements.lock.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROJECT = "authscale (pyproject.toml)"
FIX = "run deploy/lock.sh to update the locks"

#: Each lock of pyproject.toml and the extras it holds beside the dependencies, smallest first.
LOCKS = {
    "requirements.lock": ("uvicorn", "granian"),
    "lab-requirements.lock": ("uvicorn", "granian", "lab"),
    "dev-requirements.lock": ("uvicorn", "granian", "lab", "dev", "loadtest"),
}


@dataclass
class Pin:
    version: Version
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)
    #: What needs it (``# via``); ``-c FILE`` entries name the constraint it was held to.
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """Parse a `uv pip compile --generate-hashes` lock: pins, markers, hashes, `# via` lines."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in path.read_text().splitlines():
        stripped = line.strip().rstrip("\\").strip()
        if match := re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+?)(?:\s*;\s*(.+))?", stripped):
            name, version, marker = match.groups()
            current = Pin(Version(version), Marker(marker) if marker else None)
            pins[canonicalize_name(name)] = current
        elif current is not None and stripped.startswith("--hash=sha256:"):
            current.hashes.append(stripped.removeprefix("--hash=sha256:"))
        elif current is not None and stripped.startswith("# via"):
            if rest := stripped.removeprefix("# via").strip():
                current.via.append(rest)
        elif current is not None and stripped.startswith("#   "):
            current.via.append(stripped.removeprefix("#").strip())
    return pins


def pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's dependencies and those of ``extras``, as pyproject.toml states them."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    texts = [*project["dependencies"]]
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


def script_locks() -> dict[str, tuple[str, ...]]:
    """The locks deploy/lock.sh compiles from pyproject.toml, and the extras it passes each."""
    script = (DEPLOY / "lock.sh").read_text().replace("\\\n", " ")
    found = {}
    for line in script.splitlines():
        if match := re.match(r"lock deploy/(\S+) pyproject\.toml (.*)", line):
            found[match.group(1)] = tuple(re.findall(r"--extra (\S+)", match.group(2)))
    return found


def test_the_script_writes_every_lock_with_its_extras() -> None:
    assert script_locks() == LOCKS
    project = pyproject()["project"]
    assert isinstance(project, dict)
    # A new extra must land in the dev lock at least, or `make test` would miss it.
    assert set(LOCKS["dev-requirements.lock"]) == set(project["optional-dependencies"])


@pytest.mark.parametrize("lock_name", LOCKS)
def test_every_requirement_is_pinned_within_its_range_with_its_extras(lock_name: str) -> None:
    lock = read_lock(DEPLOY / lock_name)
    for requirement in requirements(LOCKS[lock_name]):
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} is not in deploy/{lock_name}: {FIX}"
        assert requirement.specifier.contains(lock[name].version, prereleases=True), (
            f"{requirement} but deploy/{lock_name} pins {lock[name].version}: {FIX}"
        )
        assert PROJECT in lock[name].via, f"{name} is not locked as a direct dependency: {FIX}"
        for extra in requirement.extras:
            for text in metadata.requires(requirement.name) or ():
                needed = Requirement(text)
                if needed.marker is not None and needed.marker.evaluate({"extra": extra}):
                    assert canonicalize_name(needed.name) in lock, (
                        f"{requirement.name}[{extra}] needs {needed.name}, not locked: {FIX}"
                    )


@pytest.mark.parametrize("lock_name", LOCKS)
def test_every_locked_package_is_still_needed(lock_name: str) -> None:
    lock = read_lock(DEPLOY / lock_name)
    direct = {canonicalize_name(r.name) for r in requirements(LOCKS[lock_name])}
    for name, pin in lock.items():
        needed_by = [source for source in pin.via if not source.startswith("-c ")]
        assert needed_by, f"{name} in deploy/{lock_name} is needed by nothing: {FIX}"
        for source in needed_by:
            if source == PROJECT:
                assert name in direct, f"{name} is no longer in pyproject.toml: {FIX}"
            else:
                assert canonicalize_name(source) in lock, f"{name} via unlocked {source}: {FIX}"


def test_a_package_has_one_version_in_every_lock() -> None:
    """Each lock is held to the one before, so the suite runs what `make up` and the image do."""
    versions: dict[str, set[Version]] = {}
    for lock_name in LOCKS:
        for name, pin in read_lock(DEPLOY / lock_name).items():
            versions.setdefault(name, set()).add(pin.version)
    assert {name: found for name, found in versions.items() if len(found) > 1} == {}


@pytest.mark.parametrize(
    "lock_name", [*LOCKS, "build-requirements.lock", "locust-requirements.lock"]
)
def test_every_pin_carries_hashes(lock_name: str) -> None:
    pins = read_lock(DEPLOY / lock_name)
    assert pins
    for name, pin in pins.items():
        assert pin.hashes, f"{name} in {lock_name} has no hash"


def test_the_locust_lock_holds_the_upstream_images_locust_as_the_suite_runs_it() -> None:
    """What the load profile's stand-in image installs (deploy/prepare-docker.sh)."""
    compose = (ROOT / "compose.yaml").read_text()
    found = re.search(r"\$\{AUTHSCALE_LOCUST_IMAGE:-locustio/locust:([^}]+)\}", compose)
    assert found is not None
    version = Version(found.group(1))
    assert f"\nlocust=={version}\n" in (DEPLOY / "locust-requirements.in").read_text()
    locust = read_lock(DEPLOY / "locust-requirements.lock")
    assert locust["locust"].version == version, FIX
    suite = read_lock(DEPLOY / "dev-requirements.lock")
    differ = {
        name for name, pin in locust.items() if name in suite and suite[name].version != pin.version
    }
    assert differ == set(), f"the stand-in's versions differ from the suite's: {FIX}"


def test_the_build_lock_satisfies_the_build_system() -> None:
    lock = read_lock(DEPLOY / "build-requirements.lock")
    build_system = pyproject()["build-system"]
    assert isinstance(build_system, dict)
    for text in build_system["requires"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} (build-system.requires) is not locked: {FIX}"
        assert requirement.specifier.contains(lock[name].version)


def test_make_installs_only_from_the_locks() -> None:
    recipe = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    installs = [line.strip() for line in recipe.splitlines() if "pip install" in line]
    assert len(installs) == 3
    for line in installs:
        # The project itself, without its dependencies and built by the locked setuptools;
        # everything else hash-checked from a lock.
        locked = "--require-hashes" in line and re.findall(r"-r (deploy/\S+\.lock)", line)
        assert locked or line.endswith("--no-deps --no-build-isolation -e ."), line
    assert "-r deploy/lab-requirements.lock" in recipe
    assert "-r deploy/dev-requirements.lock" in recipe
