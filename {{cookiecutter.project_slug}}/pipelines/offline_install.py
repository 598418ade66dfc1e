"""Whether the serving image can install a model's ``code/`` folder with no network.

The SageMaker scikit-learn image installs the model's ``code/`` folder before it serves (endpoint
or batch transform): sagemaker-containers' ``_server.start`` calls ``_modules.import_module``,
which runs ``python -m pip install . -r requirements.txt`` in that folder and, when pip fails,
raises ``InstallModuleError``: the serving process exits and the container never answers
``/ping``. Two parts of that command need the package index:

- ``.``: the folder gets a generated ``setup.py``; the image's pip (get-pip.py's newest when the
  image was built) builds it in an isolated build environment, into which it installs
  ``setuptools>=40.8.0`` (pip's default build requirement) from the index: since pip 25.3 a
  ``setup.py`` folder is always built that way (the legacy ``setup.py bdist_wheel`` path is gone,
  pypa/pip#6334);
- ``-r requirements.txt``: every pin the image's libraries do not satisfy is downloaded.

Under network isolation neither download can happen. ``code/`` installs offline only when its
``requirements.txt`` says ``--no-index`` and ``--find-links <folder>`` (relative to ``code/``),
and that folder holds a wheel, for the image's Python and platform, of setuptools and of every
pin the image lacks. The image's own pins are ``pipelines/image_versions.json``; a package it
lists only by a range (or not at all) counts as lacking, since its installed version is unknown.
The jobs start the same way (``src/job_entry.py`` installs the pins the image lacks).

:func:`wheels_for_image` picks those wheels from ``uv.lock`` (file name, URL and hash of each);
``pipelines/code_bundle.py`` ships them in the job code when the standards require network
isolation, and training copies them into the model's ``code/``. :func:`blockers` lists what stands
in the way, one short item each; ``tests/test_container.py`` checks its verdict against the
image's own install step with the network unavailable.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

IMAGE_FILE = Path(__file__).with_name("image_versions.json")
# pip's build requirement for a folder without pyproject.toml (pip/_internal/pyproject.py).
BUILD_REQUIREMENT = "setuptools>=40.8.0"
# The image: CPython 3.12 on Linux x86_64 (docker/1.4-2-py312/base/Dockerfile.cpu, Ubuntu 24.04,
# glibc 2.39), for environment markers and wheel tags.
PLATFORMS = [
    *(f"manylinux_2_{minor}_x86_64" for minor in range(39, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]


@dataclass(frozen=True)
class Image:
    """A serving image's Python and the exact versions it ships (``==`` pins only)."""

    python: str
    pinned: dict[str, str]

    @property
    def markers(self) -> dict[str, str]:
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": "x86_64",
            "os_name": "posix",
        }

    def tags(self) -> set[Tag]:
        return set(self.ordered_tags())

    def ordered_tags(self) -> list[Tag]:
        """The wheel tags the image's pip accepts, most preferred first (pip's order)."""
        version = tuple(int(part) for part in self.python.split("."))
        interpreter = f"cp{''.join(map(str, version))}"
        return [
            *cpython_tags(version, abis=[interpreter], platforms=PLATFORMS),
            *compatible_tags(version, interpreter=interpreter, platforms=PLATFORMS),
        ]

    def describe(self) -> str:
        return f"CPython {self.python} on Linux x86_64 (manylinux)"


def load_image(path: Path = IMAGE_FILE) -> Image:
    recorded = json.loads(path.read_text())
    pinned: dict[str, str] = {}
    for line in [*recorded["requirements"], *recorded["after_requirements"]]:
        requirement = Requirement(line)
        exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if exact:
            pinned[canonicalize_name(requirement.name)] = exact[0]
    return Image(python=str(recorded["python"]), pinned=pinned)


@dataclass(frozen=True)
class Requirements:
    """A requirements.txt as pip reads it: the pins, and where pip may look for them."""

    pins: tuple[Requirement, ...]
    no_index: bool
    find_links: tuple[str, ...]


def parse_requirements(text: str) -> Requirements:
    pins: list[Requirement] = []
    no_index = False
    find_links: list[str] = []
    for raw in text.splitlines():
        # One requirement per line; its hashes (--hash=..., pipelines/requirements.py) follow it.
        line = raw.split(" #", 1)[0].split(" --hash=", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            option, _, value = line.replace("=", " ", 1).partition(" ")
            if option == "--no-index":
                no_index = True
            elif option in ("--find-links", "-f"):
                find_links.append(value.strip())
            continue
        try:
            pins.append(Requirement(line))
        except InvalidRequirement as error:
            raise ValueError(f"requirements.txt: {line!r} is not a requirement: {error}") from error
    return Requirements(tuple(pins), no_index, tuple(find_links))


def _wheels(names: Iterable[str], image: Image) -> dict[str, set[Version]]:
    """Versions per package of the wheels the image can install."""
    tags = image.tags()
    found: dict[str, set[Version]] = {}
    for name in names:
        try:
            package, version, _, wheel_tags = parse_wheel_filename(Path(name).name)
        except InvalidWheelFilename:
            continue
        if wheel_tags & tags:
            found.setdefault(str(package), set()).add(version)
    return found


def lacking(requirements_text: str, image: Image) -> list[Requirement]:
    """The pins that apply on the image (their markers) and that it does not ship exactly."""
    needed = []
    for requirement in parse_requirements(requirements_text).pins:
        if requirement.marker is not None and not requirement.marker.evaluate(image.markers):
            continue
        shipped = image.pinned.get(canonicalize_name(requirement.name))
        if shipped is not None and requirement.specifier.contains(shipped, prereleases=True):
            continue
        needed.append(requirement)
    return needed


@dataclass(frozen=True)
class LockedWheel:
    """One wheel file the lock names: where the index serves it and its SHA-256."""

    filename: str
    url: str
    sha256: str


def _pinned_version(requirement: Requirement) -> str | None:
    exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
    return exact[0] if exact else None


def wheels_for_image(
    requirements_text: str, lock_text: str, image: Image, *, build: bool = True
) -> list[LockedWheel]:
    """From ``uv.lock``: a wheel for the image of every pin it lacks, the one pip would pick, and
    with ``build`` the lock's setuptools (pip's isolated build of the model's ``code/``).

    Raises ``ValueError`` (one line) when the lock has no such wheel for a pin.
    """
    packages: dict[tuple[str, str], list[dict[str, object]]] = {}
    # Locked from a file the project carries (the platform library, src/platform-wheels/): the job
    # code ships that folder itself, so no wheel is fetched for it.
    carried: set[str] = set()
    for package in tomllib.loads(lock_text).get("package", []):
        key = (canonicalize_name(package["name"]), str(Version(package["version"])))
        packages[key] = list(package.get("wheels", []))
        if "path" in package.get("source", {}):
            carried.add(key[0])
    wanted = [
        (r.name, _pinned_version(r))
        for r in lacking(requirements_text, image)
        if canonicalize_name(r.name) not in carried
    ]
    if build:
        setuptools = [v for (name, v) in packages if name == "setuptools"]
        if not setuptools:
            raise ValueError("uv.lock has no setuptools: the model's code/ cannot be built offline")
        wanted.append(("setuptools", max(setuptools, key=Version)))
    rank = {tag: index for index, tag in enumerate(image.ordered_tags())}
    chosen: list[LockedWheel] = []
    for name, version in wanted:
        if version is None:
            raise ValueError(f"requirements.txt pins {name} by a range: export it from uv.lock")
        candidates = []
        for wheel in packages.get((canonicalize_name(name), str(Version(version))), []):
            url = str(wheel["url"])
            filename = url.rsplit("/", 1)[-1]
            try:
                tags = parse_wheel_filename(filename)[3]
            except InvalidWheelFilename:
                continue
            best = min((rank[tag] for tag in tags if tag in rank), default=None)
            if best is not None:
                sha256 = str(wheel["hash"]).removeprefix("sha256:")
                candidates.append((best, LockedWheel(filename, url, sha256)))
        if not candidates:
            raise ValueError(
                f"uv.lock has no wheel of {name}=={version} for {image.describe()}: "
                "network isolation needs one (the image cannot build it offline)"
            )
        chosen.append(min(candidates, key=lambda ranked: ranked[0])[1])
    return sorted(chosen, key=lambda wheel: wheel.filename)


def blockers(requirements_text: str, files: Iterable[str], image: Image) -> list[str]:
    """What ``pip install . -r requirements.txt`` in ``code/`` would need from the index.

    ``files`` are the paths in ``code/``, relative to it (``wheels/pandas-...whl``). Empty: the
    folder installs with no network.
    """
    requirements = parse_requirements(requirements_text)
    # pip reads a relative --find-links from code/ (the requirements file's folder and pip's cwd).
    folders = {Path(link).as_posix() for link in requirements.find_links}
    local = _wheels((name for name in files if Path(name).parent.as_posix() in folders), image)
    missing: list[tuple[int, str]] = []  # (rank, item): the build, other versions, absent
    offline = requirements.no_index and bool(folders)
    needed = [(Requirement(BUILD_REQUIREMENT), True)]
    needed += [(requirement, False) for requirement in lacking(requirements_text, image)]
    for requirement, build in needed:
        name = canonicalize_name(requirement.name)
        if build:
            rank, why = 0, "pip builds code/ in an isolated environment"
        else:
            shipped = image.pinned.get(name)
            rank, why = (1, f"image has {shipped}") if shipped else (2, "not pinned in the image")
        if offline and any(requirement.specifier.contains(v) for v in local.get(name, ())):
            continue
        missing.append((rank, f"{requirement.name}{requirement.specifier} ({why})"))
    problems = [item for _, item in sorted(missing, key=lambda ranked: ranked[0])]
    if problems and not offline:
        problems.append("requirements.txt lacks --no-index and --find-links")
    return problems


SHOWN = 8


def refusal(what: str, problems: list[str]) -> str:
    """One line: why a model cannot start under network isolation and what would let it."""
    shown = "; ".join(problems[:SHOWN])
    if len(problems) > SHOWN:
        shown += f"; and {len(problems) - SHOWN} more"
    return (
        f"network_isolation (organisation standards) is on, but {what} cannot start without "
        f"network: the serving image pip-installs its code/ from the package index at start and "
        f"would need {shown}. Ship those wheels in code/ (requirements.txt with --no-index and "
        "--find-links), or deploy without network_isolation"
    )
