"""The tree's shape, checked from the source: which package may import which (from the import graph), that each
imported sibling is a declared dependency, no module over 400 lines, class names unique across the product."""

from __future__ import annotations

import ast
import re
import tomllib
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# package -> the directory (distribution) that holds it
PACKAGES = {
    "atlas_core": "core", "atlas_engine": "engine", "atlas_lens": "lens", "atlas_router": "router",
    "atlas_portal": "api-portal",
    "atlas_proxy": "llm-proxy",
    "atlas_rag": "rag-api", "atlas_sandbox": "sandbox", "atlas_worker": "task-worker",
    "atlas_dashboard": "dashboard", "atlas_llama": "llama-server", "atlas_bench": "benchmark", "atlas_cli": "cli",
}
SERVICES = {"atlas_portal", "atlas_proxy", "atlas_rag", "atlas_sandbox", "atlas_worker", "atlas_dashboard",
            "atlas_llama"}
# What each package may import besides itself. Services share logic through the libraries only.
ALLOWED = {
    "atlas_core": set(),
    "atlas_engine": {"atlas_core"},
    "atlas_lens": {"atlas_core", "atlas_engine"},
    "atlas_router": {"atlas_core", "atlas_engine"},
    "atlas_portal": {"atlas_core"},
    "atlas_proxy": {"atlas_core"},
    "atlas_sandbox": {"atlas_core"},
    "atlas_dashboard": {"atlas_core"},
    "atlas_llama": {"atlas_core"},
    "atlas_rag": {"atlas_core", "atlas_engine", "atlas_lens", "atlas_router"},
    "atlas_worker": {"atlas_core", "atlas_engine", "atlas_lens", "atlas_router"},
    "atlas_bench": {"atlas_core", "atlas_engine", "atlas_lens", "atlas_router"},
    # narrowed to CLI_MODULES below
    "atlas_cli": {"atlas_core", "atlas_lens", "atlas_router"} | SERVICES | {"atlas_bench"},
}
# The CLI starts and configures every service: it validates each one's settings before starting any, so it
# reads their settings classes (and the model files llama-server ships), never their code.
CLI_MODULES = {f"{package}.settings" for package in SERVICES} | {
    "atlas_llama.embed", "atlas_llama.models", "atlas_bench.__main__", "atlas_bench.lens"}
MAX_LINES = 400
SHARED_NAMES = {"Settings"}  # each service's settings class, always reached as atlas_<service>.settings.Settings


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute imports, at any depth: inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(package: str) -> list[Path]:
    return sorted((REPO / PACKAGES[package] / package).rglob("*.py"))


def test_no_package_imports_what_it_may_not() -> None:
    wrong: list[str] = []
    for package, allowed in ALLOWED.items():
        for path in sources(package):
            for module in imports(path):
                top = module.split(".")[0]
                if top not in PACKAGES or top == package:
                    continue
                if top not in allowed or (package == "atlas_cli" and top in SERVICES | {"atlas_bench"}
                                          and not any(module.startswith(m) for m in CLI_MODULES)):
                    wrong.append(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_every_imported_sibling_is_a_declared_dependency() -> None:
    """A service that imports the engine must say so in its pyproject.toml, or its image would lack it."""
    missing: list[str] = []
    for package, directory in PACKAGES.items():
        if package == "atlas_cli":
            continue  # it imports the services it launches only when they are installed beside it
        project = tomllib.loads((REPO / directory / "pyproject.toml").read_text())["project"]
        declared = {re.split(r"[\s\[<>=;]", d, maxsplit=1)[0] for d in project.get("dependencies", [])}
        used = {m.split(".")[0] for path in sources(package) for m in imports(path)} & set(PACKAGES) - {package}
        for sibling in used:
            name = tomllib.loads((REPO / PACKAGES[sibling] / "pyproject.toml").read_text())["project"]["name"]
            if name not in declared:
                missing.append(f"{directory} imports {sibling} but does not depend on {name}")
    assert not missing, "\n".join(missing)


def test_no_module_is_over_400_lines() -> None:
    # Not .venv, nor the llama.cpp source `make check-llama-server` unpacks into the ignored .bench/.
    long = [f"{path.relative_to(REPO)}: {n}" for path in REPO.rglob("*.py")
            if not {".venv", "node_modules", ".bench"} & set(path.parts)
            and (n := len(path.read_text().splitlines())) > MAX_LINES]
    assert not long, "split these modules:\n" + "\n".join(sorted(long))


def test_class_names_are_unique_across_the_product() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sources(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    where[node.name].append(str(path.relative_to(REPO)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1 and name not in SHARED_NAMES}
    assert not twice, "\n".join(f"{name}: {', '.join(paths)}" for name, paths in sorted(twice.items()))
