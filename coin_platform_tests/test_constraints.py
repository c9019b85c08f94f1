"""constraints.txt (written by `make lock`) pins every requirement pyproject.toml declares, within its range.

`make dev`, `make test` (so CI) and deploy/Dockerfile install with `pip install -c constraints.txt`: a
requirement missing here would resolve to whatever is newest on the day of the install.
"""

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from coin_platform.settings import PROJECT_ROOT

CONSTRAINTS = PROJECT_ROOT / "constraints.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for number, line in enumerate(CONSTRAINTS.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)  # raises InvalidRequirement on a line pip would not read either
        specifiers = list(requirement.specifier)
        assert requirement.url is None and not requirement.extras and requirement.marker is None, (number, line)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"line {number} is not name==version: {line}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{requirement.name} is pinned twice"
        pins[name] = specifiers[0].version
    return pins


def _declared() -> list[Requirement]:
    """Every third-party requirement; an extra that names the project's own extras (dev pulls in local and prod)
    adds nothing of its own: those extras are read here too."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for requirements in project["optional-dependencies"].values() for r in requirements]
    declared = [Requirement(r) for r in project["dependencies"] + extras]
    return [r for r in declared if canonicalize_name(r.name) != canonicalize_name(project["name"])]


def test_every_declared_requirement_is_pinned_within_its_range():
    pins = _pins()
    unpinned = [str(r) for r in _declared() if canonicalize_name(r.name) not in pins]
    assert unpinned == [], "run `make lock`"
    outside = {
        str(r): pins[canonicalize_name(r.name)]
        for r in _declared()
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    }
    assert outside == {}, "pins outside pyproject's ranges: run `make lock`"


def test_the_project_itself_is_not_pinned():
    """An editable or local install of the project would pin a path of the machine that ran `make lock`."""
    assert "coin-platform" not in _pins()
