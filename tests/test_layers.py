"""Dependencies point one way: data <- eval <- models <- lifecycle <- pipeline <- service
<- web, cli (read from the source, every import including those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "primetime"

#: package -> packages/modules of primetime it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "data": (
        "eval",
        "models",
        "training",
        "lifecycle",
        "registry",
        "pipeline",
        "service",
        "web",
        "cli",
        "experiment",
    ),
    "eval": (
        "models",
        "training",
        "lifecycle",
        "registry",
        "pipeline",
        "service",
        "web",
        "cli",
        "experiment",
    ),
    "models": ("eval", "lifecycle", "registry", "pipeline", "service", "web", "cli", "experiment"),
    "training": (
        "eval",
        "models",
        "lifecycle",
        "registry",
        "pipeline",
        "service",
        "web",
        "cli",
        "experiment",
    ),
    "pipeline": ("lifecycle", "service", "web", "cli", "experiment"),
    "service": ("lifecycle", "cli", "experiment"),
    # demand trends, release plans, the season study: beside the life cycle, under the CLI
    "trends": ("pipeline", "service", "web", "cli"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("primetime.")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        for module in _imports(path):
            top = module.split(".")[1]
            if top in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(SRC)} imports {module}")
    # the one composition root mounts the web app: create_app, and nothing else in service
    bad = [b for b in bad if not b.startswith("service/app.py imports primetime.web")]
    assert not bad, "\n".join(bad)


def test_service_imports_web_only_in_the_composition_root() -> None:
    users = [
        str(p.relative_to(SRC))
        for p in (SRC / "service").rglob("*.py")
        if any(m.startswith("primetime.web") for m in _imports(p))
    ]
    assert users == ["service/app.py"]
