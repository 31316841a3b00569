"""The container images, checked offline (no Docker engine builds them here): each service's Dockerfile installs
the local packages its pyproject.toml implies, the way CI proves it installs alone, and its final stage runs as a
fixed non-root user on a pinned base, with no secret, writing only to declared volumes. tests/docs/test_dockerfiles.py
and tests/install/test_pins.py check the rest (console scripts, the locks each installs)."""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.lock import closure
from tests.conftest import REPO

# Image name -> (Dockerfile, module holding its Settings): what scripts/images.sh must build.
IMAGES = {
    "atlas-api-portal": ("api-portal/Dockerfile", "atlas_portal.settings"),
    "atlas-llm-proxy": ("llm-proxy/Dockerfile", "atlas_proxy.settings"),
    "atlas-rag-api": ("rag-api/Dockerfile", "atlas_rag.settings"),
    "atlas-sandbox": ("sandbox/Dockerfile", "atlas_sandbox.settings"),
    "atlas-task-worker": ("task-worker/Dockerfile", "atlas_worker.settings"),
    "atlas-dashboard": ("dashboard/Dockerfile", "atlas_dashboard.settings"),
    "atlas-embed": ("llama-server/Dockerfile.embed", "atlas_llama.embed"),
}
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|API_KEY|SIGNING|CREDENTIAL", re.IGNORECASE)
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def env(self) -> dict[str, str]:
        return dict(re.findall(r"(\w+)=(\S+)", " ".join(self.all("ENV"))))


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    @classmethod
    def parse(cls, path: Path) -> Dockerfile:
        """Instructions with continuation lines joined and comments dropped (enough for these files)."""
        text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", path.read_text())
        args: dict[str, str] = {}
        stages: list[Stage] = []
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            keyword, _, rest = line.strip().partition(" ")
            keyword, rest = keyword.upper(), " ".join(rest.split())
            if keyword == "FROM":
                base, _, name = rest.partition(" AS ")
                stages.append(Stage(base, name or None))
            elif not stages and keyword == "ARG":
                key, _, default = rest.partition("=")
                args[key] = default
            else:
                stages[-1].instructions.append((keyword, rest))
        return cls(path, args, stages)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def local_installs(self) -> list[str]:
        """The directories of the `pip install ... --no-build-isolation ./a ./b[extra]` step, extras dropped."""
        for run in (args for stage in self.stages for args in stage.all("RUN")):
            found = re.search(r"--no-build-isolation ((?:\"?\./[^\s&]+\"?\s*)+)", run)
            if found:
                return [spec.strip('"').removeprefix("./").partition("[")[0] for spec in found.group(1).split()]
        return []


def pyproject(directory: str) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((REPO / directory / "pyproject.toml").read_text())["project"]
    return project


def local_dependencies(directory: str) -> list[str]:
    """The repository's own packages a directory needs, itself included, as directories: its atlas-* dependencies
    and theirs, recursively (what `pip install ./core ./<deps...> ./<service>` must name)."""
    by_name = {canonicalize_name(str(pyproject(p.parent.name)["name"])): p.parent.name
               for p in REPO.glob("*/pyproject.toml")}
    found, todo = [directory], [directory]
    while todo:
        dependencies = pyproject(todo.pop())["dependencies"]
        assert isinstance(dependencies, list)
        for text in dependencies:
            local = by_name.get(canonicalize_name(Requirement(text).name))
            if local and local not in found:
                found.append(local)
                todo.append(local)
    return found


def script_images() -> dict[str, str]:
    """scripts/images.sh's list: image name -> Dockerfile."""
    block = re.search(r'^IMAGES="\n(.*?)^"', (REPO / "scripts/images.sh").read_text(), re.MULTILINE | re.DOTALL)
    assert block, "scripts/images.sh has no IMAGES=\"...\" block"
    return dict(line.split() for line in block.group(1).splitlines() if line.strip())


@pytest.fixture(params=sorted(IMAGES), ids=str)
def image(request: pytest.FixtureRequest) -> tuple[str, Dockerfile]:
    return request.param, Dockerfile.parse(REPO / IMAGES[request.param][0])


def test_every_service_has_a_dockerfile_and_images_sh_builds_each_one() -> None:
    found = {str(p.relative_to(REPO)) for p in REPO.glob("*/Dockerfile*")}
    assert found == {path for path, _ in IMAGES.values()}
    assert script_images() == {name: path for name, (path, _) in IMAGES.items()}


def test_the_final_stage_runs_as_a_fixed_non_root_user(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    users = dockerfile.final.all("USER")
    assert users, f"{dockerfile.path}: the final stage sets no USER"
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), f"{dockerfile.path}: USER {users[-1]} is not uid:gid"


def test_bases_are_pinned_and_nothing_is_fetched_unchecked(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    text = dockerfile.path.read_text()
    assert ":latest" not in text
    assert not re.search(r"^ADD\s", text, re.MULTILINE), "COPY, not ADD (ADD fetches URLs and unpacks archives)"
    names = {stage.name for stage in dockerfile.stages}
    for stage in dockerfile.stages:
        base = re.sub(r"\$\{(\w+)\}", lambda m: dockerfile.args[m.group(1)], stage.base)
        assert base in names or DIGEST.search(base), f"{dockerfile.path}: FROM {stage.base} is not pinned by digest"


def test_multi_stage_the_runtime_gets_the_venv_only(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    assert len(dockerfile.stages) >= 2
    copies = dockerfile.final.all("COPY")
    assert copies == ["--from=build /opt/atlas /opt/atlas"], f"{dockerfile.path}: the runtime stage copies {copies}"


def test_copies_name_what_exists_and_what_dockerignore_lets_in(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    allowed = {line[1:].strip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for stage in dockerfile.stages:
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            *sources, _ = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile.path}: COPY {source} names nothing in the repository"
                assert source.split("/")[0] in allowed, f".dockerignore keeps {source} out of the build context"


def test_pip_installs_the_local_packages_the_pyproject_implies(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    service = dockerfile.path.parent.name
    installs = dockerfile.local_installs()
    assert installs, f"{dockerfile.path}: no `pip install --no-deps --no-build-isolation ./...` step"
    assert sorted(installs) == sorted(local_dependencies(service))
    assert installs[0] == "core" and installs[-1] == service  # the shared core first, the service last


def test_torch_comes_from_the_cpu_index_at_the_pinned_version(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    text = dockerfile.path.read_text()
    specs = re.search(r"--no-build-isolation ([^\n]+)", text)
    assert specs
    needs_torch = "torch" in closure(tuple(s.strip('"').removeprefix("./") for s in specs.group(1).split()))
    pin = re.search(r"^torch==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    assert pin
    cpu = f"--index-url https://download.pytorch.org/whl/cpu torch=={pin.group(1)}"
    assert (cpu in " ".join(text.split())) is needs_torch


def test_runtime_environment_port_and_writable_paths(image: tuple[str, Dockerfile]) -> None:
    _, dockerfile = image
    settings = importlib.import_module(IMAGES[image[0]][1]).Settings
    env = dockerfile.final.env()
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1"
    assert env.get(settings.model_fields["host"].validation_alias) == "0.0.0.0"
    assert dockerfile.final.all("EXPOSE") == [str(settings.model_fields["port"].default)]
    assert not [key for key in env if SECRET_NAME.search(key)], f"{dockerfile.path} bakes a secret into ENV"
    assert not [key for key in dockerfile.args if SECRET_NAME.search(key)]
    # a read-only root filesystem: what the service writes is a declared volume
    volumes = {v.strip('"') for args in dockerfile.final.all("VOLUME") for v in args.strip("[]").split(", ")}
    assert "/tmp" in volumes
    if "ATLAS_STATE_DIR" in env:
        assert env["ATLAS_STATE_DIR"] in volumes
    assert dockerfile.final.all("CMD"), f"{dockerfile.path} has no CMD"


def test_services_that_keep_state_have_a_state_volume() -> None:
    for name in ("atlas-api-portal", "atlas-rag-api", "atlas-task-worker"):  # the portal's DB, the Lens's weights
        assert "ATLAS_STATE_DIR" in Dockerfile.parse(REPO / IMAGES[name][0]).final.env(), name
