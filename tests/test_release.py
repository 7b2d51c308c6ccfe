"""What the Comfy Registry gets: pyproject metadata, the published file list, SECURITY.md,
the changelog, the version, and the release and CI workflows.

comfy-cli's own checks (``comfy node validate``, ``comfy node pack``) run when it is
installed (``COMFY_CLI``, set by ``dev/check.sh``); they run offline and without prompts.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
import tomllib
from conftest import PACK, REPO_ROOT
from PIL import Image

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]


def _git(*args: str, cwd: Path = REPO_ROOT) -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"not a git checkout: {out.stderr.strip()}")
    return [line for line in out.stdout.splitlines() if line]


def published_files() -> list[str]:
    """The zip's file list: git-tracked files minus .comfyignore (gitignore syntax, matched
    by git itself), as comfy-cli's ``comfy node pack`` builds it."""
    tracked = _git("ls-files")
    ignored = set(_git("ls-files", "--cached", "--ignored",
                       "--exclude-from=.comfyignore"))
    return sorted(f for f in tracked if f not in ignored)


# -- the published zip ------------------------------------------------------------------


def test_published_zip_leaves_out_tests_and_developer_files():
    files = published_files()
    dev_only = [f for f in files if f.split("/")[0] in
                ("tests", "bench", "dev", ".ci", ".github")
                or "fixtures" in f.split("/") or re.search(r"(^|/)(test_[^/]*|conftest)\.py$", f)
                or f.endswith((".test.mjs", ".test.js"))]
    assert dev_only == []
    # Nothing left in the zip imports test tooling.
    for name in files:
        if name.endswith(".py"):
            tree = ast.parse((REPO_ROOT / name).read_text(encoding="utf-8"))
            imported = {a.name.split(".")[0] for n in ast.walk(tree)
                        if isinstance(n, ast.Import) for a in n.names}
            imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                         if isinstance(n, ast.ImportFrom) and n.module and not n.level}
            assert not imported & {"pytest", "hypothesis", "requests"}, name


def test_published_zip_has_everything_the_pack_needs():
    files = set(published_files())
    needed = {"__init__.py", "pyproject.toml", "requirements.txt", "LICENSE", "README.md",
              "SECURITY.md", "CHANGELOG.md", "offline_runware.py"}
    for folder in ("nodes", "web/js", "web/docs", "example_workflows"):
        needed |= {f for f in _git("ls-files", folder)}
    assert needed - files == set()
    assert any(f.startswith("nodes/runware/spec/") for f in files)  # the models' specs
    assert set(PACK.NODE_CLASS_MAPPINGS) <= {
        Path(f).stem for f in files if f.startswith("web/docs/")}


def test_readme_images_are_in_the_repository_and_not_in_the_zip():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text)
    assert "docs/runware-panel.png" in images
    tracked, files = set(_git("ls-files")), set(published_files())
    for image in images:
        assert image in tracked and image not in files, image
        assert (REPO_ROOT / image).stat().st_size < 200_000, image


def _comfy_cli() -> str:
    cli = os.environ.get("COMFY_CLI") or ""
    if not cli:
        pytest.skip("comfy-cli not installed: set COMFY_CLI to its `comfy` (dev/check.sh "
                    "installs it in .venv-comfycli)")
    assert Path(cli).is_file(), f"COMFY_CLI={cli} does not exist"
    return cli


def _run_comfy(cli: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    home = tempfile.mkdtemp(prefix="comfy-cli-home-")
    env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": home, "DO_NOT_TRACK": "1",
           "COMFY_NO_TELEMETRY": "1", "NO_COLOR": "1"}
    try:
        return subprocess.run([cli, "--skip-prompt", "--no-json", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_comfy_node_validate_is_clean():
    out = _run_comfy(_comfy_cli(), "node", "validate", cwd=REPO_ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All validation checks passed" in out.stdout, out.stdout + out.stderr
    assert "Security warnings" not in out.stdout and "Warning" not in out.stdout


def test_comfy_node_pack_zips_exactly_the_published_files(tmp_path):
    cli = _comfy_cli()
    copy = tmp_path / "ComfyUI-Runware-Ovi-Sync3"
    copy.mkdir()
    for name in _git("ls-files"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, copy / name)
    _git("init", "-q", cwd=copy)
    _git("add", "-A", cwd=copy)
    out = _run_comfy(cli, "node", "pack", cwd=copy)
    assert out.returncode == 0, out.stdout + out.stderr
    with zipfile.ZipFile(copy / "node.zip") as zf:
        assert sorted(zf.namelist()) == published_files()


# -- pyproject --------------------------------------------------------------------------


def test_icon_is_a_shipped_square_png_at_the_repositorys_raw_url():
    icon = PYPROJECT["tool"]["comfy"]["Icon"]
    owner_repo = REPOSITORY.removeprefix("https://github.com/").rstrip("/")
    prefix = f"https://raw.githubusercontent.com/{owner_repo}/main/"
    assert icon.startswith(prefix), icon
    path = icon.removeprefix(prefix)
    assert path in _git("ls-files")
    with Image.open(REPO_ROOT / path) as image:
        assert image.format == "PNG" and image.width == image.height >= 128


def _floor() -> tuple[int, ...]:
    spec = PYPROJECT["tool"]["comfy"]["requires-comfyui"]
    match = re.fullmatch(r">=\s*(\d+(?:\.\d+)+)", spec)
    assert match, f"requires-comfyui should be a plain floor like >=0.3.45, not {spec!r}"
    return tuple(int(p) for p in match.group(1).split("."))


def test_requires_comfyui_is_the_oldest_release_with_what_the_pack_uses():
    import inspect

    # ComfyUI release that first had each feature (see the comment in pyproject.toml).
    needs = {}
    if (REPO_ROOT / "example_workflows").is_dir():
        needs["example_workflows/ templates"] = (0, 3, 11)
    classes = PACK.NODE_CLASS_MAPPINGS.values()
    if any("VIDEO" in c.RETURN_TYPES for c in classes):
        needs["VIDEO type"] = (0, 3, 31)
    if (REPO_ROOT / "web" / "docs").is_dir():
        needs["help pages in web/docs"] = (0, 3, 40)
    if any(inspect.iscoroutinefunction(getattr(c, c.FUNCTION)) for c in classes):
        needs["async node functions"] = (0, 3, 45)
    assert _floor() == max(needs.values()), needs


def test_pyproject_dependencies_and_urls_for_the_registry():
    project = PYPROJECT["project"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert re.fullmatch(r"[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*", project["name"])
    assert project["urls"]["Issues"].startswith(REPOSITORY)


# -- one version ------------------------------------------------------------------------


def test_changelog_keeps_a_changelog_and_its_newest_release_is_the_version():
    text = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, re.M)
    assert releases and releases[0][0] == VERSION
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[0] == "Unreleased"
    for name in headings:  # every heading has its link at the bottom
        assert re.search(rf"^\[{re.escape(name)}\]: https://", text, re.M), name
    sections = set(re.findall(r"^### (.+)$", text, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_the_version_is_written_only_in_pyproject():
    pattern = re.compile(r"""(__version__|\bversion\b)\s*[=:]\s*["']\d+\.\d+\.\d+""", re.I)
    offenders = [
        name for name in published_files() + _git("ls-files", ".github")
        if name != "pyproject.toml" and name.endswith((".py", ".js", ".json", ".toml", ".yml"))
        and pattern.search((REPO_ROOT / name).read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []


# -- workflows --------------------------------------------------------------------------


def _workflow(name: str) -> str:
    path = REPO_ROOT / ".github" / "workflows" / name
    assert path.is_file(), f".github/workflows/{name} is missing"
    return path.read_text(encoding="utf-8")


def test_ci_workflow_runs_ci_run_on_pushes_and_pull_requests():
    text = _workflow("ci.yml")
    on = text.split("\non:", 1)[1].split("\njobs:", 1)[0]
    assert re.search(r"^\s+push:", on, re.M) and re.search(r"^\s+pull_request:", on, re.M)
    assert re.search(r"^\s+run: bash \.ci/run\s*$", text, re.M)


def test_release_workflow_publishes_a_version_tag_that_matches_pyproject():
    text = _workflow("release.yml")
    on = text.split("\non:", 1)[1].split("\njobs:", 1)[0]
    assert re.search(r"tags:\s*\n\s+- ['\"]?v\*", on)
    assert "uses: Comfy-Org/publish-node-action@" in text
    assert re.search(r"personal_access_token: \$\{\{ secrets\.REGISTRY_ACCESS_TOKEN \}\}",
                     text)
    assert "bash .ci/run" in text  # the tests pass before anything is published
    # The tag is checked against the one version, read from pyproject.toml.
    check = text.split("pyproject.toml", 1)
    assert len(check) == 2 and "GITHUB_REF_NAME" in text


# -- SECURITY.md ------------------------------------------------------------------------

ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
NETWORK_MODULES = {"aiohttp", "socket", "socketserver", "http.server", "http.client",
                   "urllib.request", "requests", "httpx", "websocket", "websockets", "ssl"}


def _security_section(title: str) -> str:
    text = (REPO_ROOT / "SECURITY.md").read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.M)
    section = [p for p in parts if p.startswith(title)]
    assert section, f"SECURITY.md has no '## {title}' section"
    return section[0]


def _python_sources() -> dict[str, ast.Module]:
    return {name: ast.parse((REPO_ROOT / name).read_text(encoding="utf-8"), filename=name)
            for name in published_files() if name.endswith(".py")}


def _module_constants(trees: dict[str, ast.Module]) -> dict[str, str]:
    found = {}
    for tree in trees.values():
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                found[node.targets[0].id] = node.value.value
    return found


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
        isinstance(node.value, ast.Name) and node.value.id == "os"


def environment_reads() -> dict[str, set[str]]:
    """Published module -> the environment variables it reads (names resolved through
    module constants; a module that reads a computed name owns every NAME_LIKE string it
    holds)."""
    trees = _python_sources()
    constants = _module_constants(trees)
    reads: dict[str, set[str]] = {}
    for name, tree in trees.items():
        if not any(_is_environ(n) for n in ast.walk(tree)):
            continue
        names: set[str] = set()
        unresolved = False
        for node in ast.walk(tree):
            arg = None
            if isinstance(node, ast.Call) and node.args and (
                    _is_environ(node.func) or (isinstance(node.func, ast.Attribute)
                                               and _is_environ(node.func.value))):
                arg = node.args[0]
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                arg = node.slice
            if arg is None:
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                names.add(constants[arg.id])
            else:
                unresolved = True
        if unresolved:
            names |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                      and isinstance(n.value, str) and ENV_NAME.fullmatch(n.value)}
        reads[name] = names
    return reads


def network_modules() -> set[str]:
    found = set()
    for name, tree in _python_sources().items():
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(m in NETWORK_MODULES or m.split(".")[0] in NETWORK_MODULES - {"http", "urllib"}
                   for m in mods):
                found.add(name)
    return found


def test_security_md_lists_every_environment_variable_the_pack_reads():
    section = _security_section("Environment variables")
    reads = environment_reads()
    assert "nodes/runware/config.py" in reads  # the scan finds what is there
    for module, names in reads.items():
        assert f"`{module}`" in section, f"SECURITY.md does not list {module}"
        for var in names:
            assert f"`{var}`" in section, f"SECURITY.md does not list {var} ({module})"
    listed = set(re.findall(r"`([\w/]+\.py)`", section))
    assert listed <= set(reads), f"listed but reads no environment: {listed - set(reads)}"


def test_security_md_lists_every_module_that_touches_the_network():
    section = _security_section("Network")
    found = network_modules()
    assert "nodes/runware/client.py" in found
    listed = set(re.findall(r"^\| `([\w/]+\.py)`", section, re.M))
    assert listed == found
    proxies = [m for m, t in _python_sources().items() if "trust_env" in ast.dump(t)]
    if proxies:  # aiohttp then reads the proxy variables itself
        env = _security_section("Environment variables")
        assert "HTTPS_PROXY" in env and "NO_PROXY" in env, proxies
