"""The pack's shape: what ComfyUI loads, what it imports, what it installs."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


# -- the import graph: the core stands alone, and nothing imports in a circle -----------------


def module_imports(root: Path, package: str = "nodes") -> dict[str, set[str]]:
    """Every module of ``root/package`` -> the modules it imports, read from
    the source (AST), relative imports resolved, imports inside functions included.

    Names are dotted from ``root`` (``nodes.runware.media``); an import of a name that is
    not a module counts as an import of its package (``from .. import x`` -> the package
    of x when x is a module, else the package itself). Absolute imports are kept as they
    are written (``comfy_api.latest``).
    """
    modules: dict[str, tuple[Path, bool]] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        if parts:
            modules[".".join(parts)] = (path, is_package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module or "")
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                if node.level - 1 > len(here):
                    found.add("<outside the package tree>")
                    continue
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    child = f"{target}.{alias.name}" if target else alias.name
                    found.add(child if child in modules else target or "<the top package>")
        graph[name] = found - {name}
    return graph


def import_problems(root: Path, core: str) -> list[str]:
    """Imports that break the layout: the core (``core``, a dotted package) reaching
    outside itself (ComfyUI, the node layer, anything relative above it), and cycles."""
    graph = module_imports(root)
    local = set(graph)
    problems = []
    for name, targets in sorted(graph.items()):
        if name != core and not name.startswith(core + "."):
            continue
        for target in sorted(targets):
            top = target.split(".")[0]
            inside = target == core or target.startswith(core + ".")
            if (target in local or target.startswith("<") or top in COMFY_MODULES) \
                    and not inside:
                problems.append(f"{name} imports {target} (outside {core})")
    # cycles: strongly connected components of the pack's own modules (Tarjan)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(t for t in graph[v] if t in local):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                problems.append("import cycle: " + " <-> ".join(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return problems


def test_the_core_stands_alone_and_no_module_imports_in_a_circle():
    """nodes/runware/ (the core) imports nothing of the node layer or ComfyUI, relative or
    lazy imports included; no cycle anywhere in nodes/, lazy imports included."""
    assert import_problems(REPO_ROOT, "nodes.runware") == []


def test_the_import_check_finds_what_it_looks_for(tmp_path):
    """The checker above on a small tree with each kind of problem."""
    def write(name: str, text: str) -> None:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    write("nodes/__init__.py", "")
    write("nodes/host.py", "def f():\n    from .runware import media\n")
    write("nodes/runware/__init__.py", "")
    write("nodes/runware/media.py", "from .. import host\n")  # relative, outside the core
    write("nodes/runware/a.py", "def g():\n    from . import b\n")  # lazy cycle a <-> b
    write("nodes/runware/b.py", "from .a import g\n")
    write("nodes/runware/c.py", "import comfy_api.latest\n")
    problems = import_problems(tmp_path, "nodes.runware")
    assert "nodes.runware.media imports nodes.host (outside nodes.runware)" in problems
    assert "nodes.runware.c imports comfy_api.latest (outside nodes.runware)" in problems
    assert "import cycle: nodes.runware.a <-> nodes.runware.b" in problems
    assert "import cycle: nodes.host <-> nodes.runware.media" in problems
    assert len(problems) == 4, problems


SQLITE_ONLY = re.compile(r"PRAGMA|sqlite_|INSERT\s+OR\b", re.IGNORECASE)


def storage_problems(root: Path) -> list[str]:
    """Where nodes/ under ``root`` leans on SQLite outside the store's backend class: an
    import of sqlite3 outside runware/store.py, or SQLite-only SQL (PRAGMA, sqlite_*
    tables, INSERT OR ...) in a string outside ``_SqliteFile``."""
    problems = []
    for path in sorted((root / "nodes").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=name)
        backend: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "_SqliteFile" \
                    and name == "nodes/runware/store.py":
                backend.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                modules = []
            if any(m.split(".")[0] == "sqlite3" for m in modules) \
                    and name != "nodes/runware/store.py":
                problems.append(f"{name}:{node.lineno} imports sqlite3")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in backend and SQLITE_ONLY.search(node.value):
                problems.append(f"{name}:{node.lineno} SQLite-only SQL outside _SqliteFile: "
                                f"{node.value[:60]!r}")
    return problems


def test_only_the_store_backend_speaks_sqlite(tmp_path):
    """Issue 10: the store is one interface with portable SQL, so a shared server database
    can replace the SQLite file without touching the job logic. Checked on the pack, and
    the checker itself on a small tree with each kind of problem."""
    assert storage_problems(REPO_ROOT) == []
    store = tmp_path / "nodes" / "runware" / "store.py"
    store.parent.mkdir(parents=True)
    store.write_text("import sqlite3\n"
                     "class _SqliteFile:\n    Q = 'PRAGMA journal_mode=WAL'\n"
                     "class Store:\n    Q = 'INSERT OR REPLACE INTO jobs VALUES (?)'\n")
    (tmp_path / "nodes" / "runware" / "spend.py").write_text(
        "from sqlite3 import connect\nQ = 'SELECT name FROM sqlite_master'\n")
    found = storage_problems(tmp_path)
    assert [p.split(" ")[0] for p in found] == [
        "nodes/runware/spend.py:1", "nodes/runware/spend.py:2", "nodes/runware/store.py:5"], found


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


def readme_commands(heading: str) -> list[str]:
    """The command lines of the first ```bash block under the README's ``## heading``."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]
    block = body.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _stub(path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.mark.skipif(shutil.which("git") is None or os.name == "nt", reason="git, sh")
def test_ci_runs_the_readme_development_command_from_a_hyphenated_folder(tmp_path):
    """Behaviour, not text: .ci/run from a clone in a folder CI picked, with the README's
    development script replaced by a recorder."""
    [command] = readme_commands("Development")
    argv = shlex.split(command)
    assert argv[0] == "bash" and len(argv) == 2, command
    clone = tmp_path / "checkout"  # a Python identifier: .ci/run must not rely on it
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for name in tracked:
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, clone / name)
    record = tmp_path / "record"
    _stub(clone / argv[1], f'echo "$PWD" > {record}\ngit ls-files >> {record}\n')
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _stub(stubs / "ffmpeg", "exit 0\n")  # present: no apt-get from a test
    out = subprocess.run(["bash", str(clone / ".ci" / "run")], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"},
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    ran_in, *files = record.read_text().splitlines()
    assert Path(ran_in).name == "ComfyUI-Runware-Ovi-Sync3"
    assert not ran_in.isidentifier() and Path(ran_in) != clone
    assert sorted(files) == sorted(tracked)  # the whole tracked tree, with a git index
    assert not Path(ran_in).exists()  # the copy is cleaned up


@pytest.mark.skipif(os.name == "nt", reason="sh")
def test_the_development_command_sets_up_and_runs_every_test(tmp_path):
    """dev/check.sh with recording stand-ins for Python, pip, ruff, node and pytest: the
    steps the README promises, in order, and comfy-cli handed to pytest."""
    [command] = readme_commands("Development")
    script = shlex.split(command)[1]
    repo = tmp_path / "repo"
    (repo / script).parent.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / script, repo / script)
    stubs, log = tmp_path / "stubs", tmp_path / "log"
    stubs.mkdir()
    _stub(stubs / "python", f"""echo "$0 $*" >> {log}
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  echo 'export PATH="{stubs}:$PATH"' > "$3/bin/activate"
  ln -s "{stubs}/python" "$3/bin/python"
fi
""")
    for tool in ("ruff", "mypy", "node", "pytest"):
        _stub(stubs / tool, f'echo "{tool}" "$@" "COMFY_CLI=$COMFY_CLI" >> {log}\n')
    shutil.copy2(stubs / "python", tmp_path / "python3.11")
    out = subprocess.run(["bash", str(repo / script)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                              "PYTHON": str(tmp_path / "python3.11")}, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    steps = log.read_text().replace(str(stubs) + "/", "").replace(str(tmp_path) + "/", "")
    assert steps.splitlines() == [
        "python3.11 -m venv .venv",
        "python -m pip install --quiet torch==2.13.0",
        "python -m pip install --quiet .[test]",
        "python3.11 -m venv .venv-comfycli",
        ".venv-comfycli/bin/python -m pip install --quiet comfy-cli",
        "ruff check . COMFY_CLI=repo/.venv-comfycli/bin/comfy",
        "mypy nodes/runware COMFY_CLI=repo/.venv-comfycli/bin/comfy",
        "mypy nodes COMFY_CLI=repo/.venv-comfycli/bin/comfy",
        "node --test tests/js/ COMFY_CLI=repo/.venv-comfycli/bin/comfy",
        "pytest COMFY_CLI=repo/.venv-comfycli/bin/comfy",
    ]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed")
def test_mypy_runs_in_a_clone_folder_that_is_no_package_name(tmp_path):
    """The README's clone target holds the pack's __init__.py and is no Python identifier:
    with the project's mypy settings, `mypy nodes` there checks nodes/ as a package (it
    does not climb into the folder and stop with "not a valid Python package name")."""
    clone = tmp_path / "ComfyUI-Runware-Ovi-Sync3"
    (clone / "nodes" / "runware").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "pyproject.toml", clone / "pyproject.toml")
    (clone / "__init__.py").write_text("from .nodes import X\n")
    (clone / "nodes" / "__init__.py").write_text("from .runware.core import X\n")
    (clone / "nodes" / "runware" / "__init__.py").write_text("")
    (clone / "nodes" / "runware" / "core.py").write_text("X: int = 1\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "c"),
                          "nodes"], cwd=clone, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues found in 3 source files" in out.stdout, out.stdout


def test_every_node_declares_its_inputs_once():
    """INPUT_TYPES is derived from the node's input table (one row per input)."""
    for node_id, cls in PACK.NODE_CLASS_MAPPINGS.items():
        assert cls.INPUT_TYPES() == cls.INPUTS.input_types(), node_id
        declared = [n for section in ("required", "optional")
                    for n in cls.INPUT_TYPES().get(section, {})]
        assert sorted(declared) == sorted(cls.INPUTS.names), node_id


def test_the_cores_error_names_agree_with_the_input_tables():
    """A spec violation names the node input to fix through the core's API-path maps
    (tasks.OVI_FIELDS / SYNC3_FIELDS / DELIVERY_FIELDS): every API field an input row says
    it fills must lead back to that input (or to a value inside it, e.g. delivery.ttl)."""
    tasks = pack_module("nodes.runware.tasks")
    maps = {"RunwareOvi": {**tasks.OVI_FIELDS, **tasks.DELIVERY_FIELDS},
            "RunwareSync3": {**tasks.SYNC3_FIELDS, **tasks.DELIVERY_FIELDS}}
    # images is the other way to give sync-3 its video: both fill inputs.video, and an
    # error about that field names video (the one the help page describes first).
    shared = {("RunwareSync3", "images"): "video"}
    for node_id, fields in maps.items():
        rows = [r for r in PACK.NODE_CLASS_MAPPINGS[node_id].INPUTS.rows if r.api]
        assert rows, node_id
        for row in rows:
            expected = shared.get((node_id, row.name), row.name)
            for path in row.api:
                named = tasks.node_input_for(path, fields)
                assert named == expected or (named or "").startswith(expected + "."), (
                    node_id, row.name, path, named)


def test_every_node_has_a_help_page_naming_its_inputs_and_their_api_fields():
    """Derived from the input tables: every input is named on its node's help page, on a
    line that also names the API field(s) the input fills."""
    for node_id, cls in PACK.NODE_CLASS_MAPPINGS.items():
        page = REPO_ROOT / "web" / "docs" / f"{node_id}.md"
        assert page.is_file(), f"web/docs/{node_id}.md is missing"
        lines = page.read_text().splitlines()
        for row in cls.INPUTS:
            named = [line for line in lines if f"`{row.name}`" in line]
            assert named, f"{node_id}.md does not mention {row.name}"
            for field in row.api:
                assert any(f"`{field}`" in line or f"`{field}." in line for line in named), \
                    f"{node_id}.md: no line names both {row.name} and its API field {field}"


def readme_layout() -> dict[str, set[str]]:
    """The README's Layout block: folder (as indented there) -> the .py files it names."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("\nLayout:\n\n```\n", 1)[1].split("```", 1)[0]
    named: dict[str, set[str]] = {}
    folders: list[str] = []  # the folder at each indent level
    for line in block.splitlines():
        if not line.strip() or line.startswith("   " * 7):  # a description's continuation
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        head = line.split()[0]
        del folders[depth:]
        here = "/".join(folders)
        for token in re.findall(r"[\w.]+\.py", line):
            named.setdefault(here, set()).add(token)
        if head.endswith("/"):
            folders.append(head.rstrip("/"))
    return named


def test_the_readme_layout_names_every_module_where_it_is():
    """README.md's Layout matches the tree: every module of nodes/ (the double's insides
    aside) is named under its folder, and every module named there exists."""
    named = readme_layout()
    for folder in ("nodes", "nodes/runware"):
        on_disk = {p.name for p in (REPO_ROOT / folder).glob("*.py") if p.name != "__init__.py"}
        assert named.get(folder, set()) == on_disk, folder
    assert (REPO_ROOT / "nodes" / "runware" / "double").is_dir()


def test_requirements_txt_and_pyproject_agree():
    reqs = sorted(
        line.split("#")[0].strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    )
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert reqs == sorted(data["project"]["dependencies"])
