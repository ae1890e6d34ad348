"""The locks (requirements.lock, requirements-dev.lock) agree with their inputs and the venv.

Offline and cheap (no index is asked): pip-compile wrote each lock from a requirements file, so

- every pin of an input is in its lock at the same version, and every package the lock says
  comes from the input (``# via -r requirements.txt``) is still in it;
- the lock is closed: every requirement of a locked package (its extras and markers
  evaluated here) names a locked package at a version it accepts;
- the runtime lock is the dev lock's subset, at the same versions;
- this venv (installed by ``make`` from requirements-dev.lock) holds exactly the locked versions.

A failure means an input changed without ``make lock``, or a venv that drifted.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [
    ("requirements.txt", "requirements.lock"),
    ("requirements-dev.txt", "requirements-dev.lock"),
]


def read_inputs(name: str) -> dict[str, Requirement]:
    """Direct requirements of an input file, following ``-r`` (``-c`` constrains only)."""
    found: dict[str, Requirement] = {}
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-c"):
            continue
        if line.startswith("-r"):
            found.update(read_inputs(line[2:].strip()))
            continue
        requirement = Requirement(line)
        found[canonicalize_name(requirement.name)] = requirement
    return found


def read_lock(name: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """``{package: version}`` and ``{package: {what it is there for}}`` from a lock."""
    pins: dict[str, str] = {}
    via: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        pin = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line.strip())
        if pin and not line.startswith(" "):
            current = canonicalize_name(pin[1])
            pins[current] = pin[2]
            via[current] = set()
            continue
        reason = re.fullmatch(r"\s+#\s+(?:via\s+)?(-r \S+|-c \S+|[A-Za-z0-9._-]+)", line)
        if current and reason and reason[1] != "via":
            via[current].add(reason[1])
    return pins, via


@pytest.mark.parametrize(("source", "lock"), PAIRS)
def test_every_input_pin_is_locked_at_its_version(source, lock):
    inputs = read_inputs(source)
    pins, via = read_lock(lock)
    for name, requirement in inputs.items():
        assert name in pins, f"{name} is in {source} but not in {lock}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{source} asks {requirement}, {lock} has {pins[name]}: run `make lock`"
        )
    direct_by_lock = {
        name for name, reasons in via.items() if any(r.startswith("-r ") for r in reasons)
    }
    assert direct_by_lock <= set(inputs), (
        f"{lock} still lists {sorted(direct_by_lock - set(inputs))} as direct: run `make lock`"
    )


def wanted_extras(inputs: dict[str, Requirement]) -> dict[str, set[str]]:
    """Each needed package with the extras asked of it, directly or by another package."""
    extras: dict[str, set[str]] = {name: set(r.extras) for name, r in inputs.items()}
    changed = True
    while changed:
        changed = False
        for name in list(extras):
            for requirement in requirements_of(name, extras[name]):
                target = canonicalize_name(requirement.name)
                if target not in extras or not set(requirement.extras) <= extras[target]:
                    extras.setdefault(target, set()).update(requirement.extras)
                    changed = True
    return extras


def requirements_of(name: str, extras: set[str]) -> list[Requirement]:
    try:
        declared = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is not installed: run `make venv-dev`")
    needed = []
    for raw in declared:
        requirement = Requirement(raw)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in {"", *extras}):
            needed.append(requirement)
    return needed


@pytest.mark.parametrize(("source", "lock"), PAIRS)
def test_lock_is_closed_over_its_dependencies(source, lock):
    inputs = read_inputs(source)
    pins, _ = read_lock(lock)
    extras = wanted_extras(inputs)
    for name, asked in extras.items():
        assert name in pins, f"{name} is needed but not in {lock}: run `make lock`"
        for requirement in requirements_of(name, asked):
            target = canonicalize_name(requirement.name)
            assert target in pins, f"{name} needs {requirement}, missing from {lock}"
            assert requirement.specifier.contains(pins[target], prereleases=True), (
                f"{name} needs {requirement}, {lock} has {pins[target]}"
            )


def test_runtime_lock_is_the_dev_locks_subset():
    runtime, _ = read_lock("requirements.lock")
    dev, _ = read_lock("requirements-dev.lock")
    differ = {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v}
    assert not differ, f"requirements.lock and requirements-dev.lock disagree: {differ}"


def test_this_venv_holds_exactly_the_locked_versions():
    pins, _ = read_lock("requirements-dev.lock")
    drift = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[name] = (version, installed)
    assert not drift, f"locked vs installed: {drift}; run `make venv-dev` after `make lock`"
