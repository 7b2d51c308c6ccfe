"""The pack's shape: what ComfyUI loads, what it imports, what it installs."""

from __future__ import annotations

import ast
import sys

import tomllib
from conftest import PACK, PACK_NAME, REPO_ROOT, pack_module

# Top-level modules of ComfyUI itself: the pack may only reach them lazily, from host.py.
COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "server",
                 "folder_paths", "execution", "nodes", "utils", "main", "app"}


def pack_sources():
    return sorted(p for p in (REPO_ROOT / "nodes").rglob("*.py")) + [REPO_ROOT / "__init__.py"]


def test_pack_exports_only_the_three_names():
    assert sorted(PACK.__all__) == [
        "NODE_CLASS_MAPPINGS",
        "NODE_DISPLAY_NAME_MAPPINGS",
        "WEB_DIRECTORY",
    ]
    assert (REPO_ROOT / PACK.WEB_DIRECTORY).is_dir()
    assert set(PACK.NODE_DISPLAY_NAME_MAPPINGS) <= set(PACK.NODE_CLASS_MAPPINGS)


def test_modules_load_under_the_path_name_comfyui_uses():
    errors = pack_module("nodes.runware.errors")
    assert errors.__name__ == f"{PACK_NAME}.nodes.runware.errors"
    assert "/" in PACK_NAME  # ComfyUI's module name for a pack is its absolute path
    # The stand-in for ComfyUI's own nodes.py is still the top-level "nodes".
    assert sys.modules["nodes"].__file__ == "<ComfyUI nodes.py stand-in>"


def test_no_absolute_imports_of_the_pack_or_of_comfyui_at_module_level():
    offenders = []
    for path in pack_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_host = path.name == "host.py"
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in COMFY_MODULES and not is_host:
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {name}")
        if is_host:
            # host.py may only import ComfyUI lazily (inside functions).
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    assert (mod or "").split(".")[0] not in COMFY_MODULES, mod
    assert offenders == []


def test_requirements_never_list_torch():
    lines = [
        line.split("#")[0].strip().lower()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
    ]
    names = {line.split(">")[0].split("=")[0].split("<")[0].strip() for line in lines if line}
    assert not names & {"torch", "torchvision", "torchaudio"}
    assert {"aiohttp", "av", "jsonschema"} <= names


def test_pyproject_has_registry_metadata():
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = data["project"]
    for key in ("name", "version", "description", "license", "dependencies"):
        assert project.get(key), key
    assert "comfyui" not in project["name"].lower()
    assert project["urls"]["Repository"]
    assert "test" in project["optional-dependencies"]
    deps = " ".join(project["dependencies"]).lower()
    assert "torch" not in deps
    comfy = data["tool"]["comfy"]
    for key in ("PublisherId", "DisplayName", "Icon", "requires-comfyui"):
        assert key in comfy, key


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    assert "pip install --quiet torch==2.13.0" in ci
    assert "\npytest\n" in ci and "\npytest\n" in readme


def test_every_node_has_a_help_page_naming_its_inputs():
    for node_id, cls in PACK.NODE_CLASS_MAPPINGS.items():
        page = REPO_ROOT / "web" / "docs" / f"{node_id}.md"
        assert page.is_file(), f"web/docs/{node_id}.md is missing"
        text = page.read_text()
        definition = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name in definition.get(section, {}):
                assert f"`{name}`" in text, f"{node_id}.md does not mention {name}"


def test_requirements_txt_and_pyproject_agree():
    reqs = sorted(
        line.split("#")[0].strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    )
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert reqs == sorted(data["project"]["dependencies"])
