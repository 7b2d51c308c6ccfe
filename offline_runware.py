"""Offline Runware: try the pack for free, with the local Runware double the tests use.

Your ComfyUI and the double together (Ctrl-C stops both)::

    python offline_runware.py --comfyui /path/to/ComfyUI [--port 8188] [-- extra ComfyUI args]

Any Python 3.10+ can run this: the double and ComfyUI both run with ComfyUI's own Python
(the portable build's ``python_embeded``, a ``venv`` / ``.venv`` beside ComfyUI, else this
one; ``--python`` picks one). Only that ComfyUI process gets ``RUNWARE_API_URL`` (the
double), a throw-away key and a cache folder of its own; your key file and your real result
cache are never touched.

The double alone, for a ComfyUI you start yourself (needs the pack's requirements)::

    python offline_runware.py --port 8765 --key offline
    RUNWARE_API_URL=http://127.0.0.1:8765/v1 RUNWARE_API_KEY=offline python main.py

ComfyUI never imports this file. The standalone double loads the pack by path, like
ComfyUI does, so the pack folder may have any name.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_COMFYUI_PORT = 8188
# Seconds Ctrl-C gives each process to stop by itself before it is terminated, then killed.
STOP_GRACE = 10.0


def pack_version() -> str:
    """The pack's version, from pyproject.toml (the one place it is written)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # 3.10: the [project] table's version line is enough
        match = re.search(r'(?ms)^\[project\].*?^version\s*=\s*"([^"]+)"', text)
        return match.group(1) if match else "unknown"
    return str(tomllib.loads(text)["project"]["version"])


# -- standalone double ------------------------------------------------------------------


def comfyui_module_name(folder: Path) -> str:
    """The module name ComfyUI gives a custom-node folder: its absolute path, with every
    "." written as "_x_" (ComfyUI's nodes.py ``load_custom_node``)."""
    return str(folder).replace(".", "_x_")


def load_package(folder: Path, name: str, *, comfyui_nodes_stand_in: bool = False
                 ) -> types.ModuleType:
    """Import ``folder/__init__.py`` by path as the package ``name`` (once), the way ComfyUI
    imports a pack: its modules then import each other only relatively.

    ``comfyui_nodes_stand_in`` plants an empty top-level ``nodes`` module first, where
    ComfyUI's own ``nodes.py`` would be (tests and benchmarks: an absolute ``import nodes``
    in the pack then finds ComfyUI's, not the pack's, as it would inside ComfyUI).

    This is the one loader: the tests, the benchmarks and the standalone double use it.
    """
    if name in sys.modules:
        return sys.modules[name]
    if comfyui_nodes_stand_in and "nodes" not in sys.modules:
        stand_in = types.ModuleType("nodes")
        stand_in.__file__ = "<ComfyUI nodes.py stand-in>"
        stand_in.NODE_CLASS_MAPPINGS = {}  # type: ignore[attr-defined]
        sys.modules["nodes"] = stand_in
    spec = importlib.util.spec_from_file_location(
        name, Path(folder) / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_pack(name: str | None = None, *, comfyui_nodes_stand_in: bool = False
              ) -> types.ModuleType:
    """This pack, loaded by path (default name: the one ComfyUI would give it)."""
    return load_package(ROOT, name or comfyui_module_name(ROOT),
                        comfyui_nodes_stand_in=comfyui_nodes_stand_in)


def run_double(argv: Sequence[str]) -> int:
    try:
        name = "runware_ovi_sync_offline"
        load_pack(name)
        cli = importlib.import_module(f"{name}.nodes.runware.double.cli")
    except ModuleNotFoundError as exc:
        print(f"error: {sys.executable} lacks the pack's requirements ({exc}). Install "
              f"them: {sys.executable} -m pip install -r {ROOT / 'requirements.txt'}",
              file=sys.stderr)
        return 1
    return int(cli.main(list(argv)) or 0)


# -- finding ComfyUI and its Python -----------------------------------------------------


def find_comfyui(path: str | os.PathLike[str]) -> Path:
    """The folder holding ComfyUI's main.py: ``path`` itself, or the portable build's
    ``ComfyUI`` folder inside it."""
    folder = Path(path).expanduser().resolve()
    for candidate in (folder, folder / "ComfyUI"):
        if (candidate / "main.py").is_file():
            return candidate
    raise SystemExit(f"error: no ComfyUI in {folder} (no main.py there or in {folder}/ComfyUI)")


def find_python(comfyui: Path) -> tuple[str, str]:
    """ComfyUI's own Python and how it was found: the portable build's python_embeded, a
    venv or .venv in or beside the ComfyUI folder, else the Python running this script."""
    for base in (comfyui.parent, comfyui):
        embedded = base / "python_embeded" / "python.exe"
        if embedded.is_file():
            return str(embedded), "the portable build's python_embeded"
    for base in (comfyui, comfyui.parent):
        for venv in ("venv", ".venv"):
            for exe in ("bin/python", "Scripts/python.exe"):
                candidate = base / venv / exe
                if candidate.is_file():
                    return str(candidate), f"the virtual environment {base / venv}"
    return sys.executable, "the Python running this script"


def _option(args: Sequence[str], name: str) -> str | None:
    """The last value given for ``name`` (``--x v`` or ``--x=v``) in ComfyUI's arguments."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def comfyui_output_dir(comfyui: Path, comfy_args: Sequence[str]) -> Path:
    output = _option(comfy_args, "--output-directory")
    if output:
        return Path(output).expanduser().resolve()
    base = _option(comfy_args, "--base-directory")
    return (Path(base).expanduser().resolve() if base else comfyui) / "output"


def pack_is_installed(comfyui: Path, comfy_args: Sequence[str]) -> bool:
    base = _option(comfy_args, "--base-directory")
    folders = [comfyui / "custom_nodes"]
    if base:
        folders.insert(0, Path(base).expanduser() / "custom_nodes")
    for folder in folders:
        try:
            if any(entry.resolve() == ROOT for entry in folder.iterdir()):
                return True
        except OSError:
            continue
    return False


def comfyui_environment(base: Mapping[str, str], *, api_url: str, api_key: str,
                        cache_dir: Path) -> dict[str, str]:
    """ComfyUI's environment: the double's URL, a throw-away key (it outranks a key file,
    which is left alone) and a cache of its own, so pretend results never stand in for
    paid ones in the real cache later."""
    env = dict(base)
    env["RUNWARE_API_URL"] = api_url
    env["RUNWARE_API_KEY"] = api_key
    env["RUNWARE_CACHE_DIR"] = str(cache_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- processes --------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def page_host(comfy_args: Sequence[str]) -> str:
    listen = _option(comfy_args, "--listen")
    first = (listen or "").split(",")[0].strip()
    if not first or first in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{first}]" if ":" in first else first


class _Stop(Exception):
    """SIGTERM (or SIGBREAK) for the launcher: stop both processes like Ctrl-C does."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def stop_process(proc: subprocess.Popen, name: str, grace: float = STOP_GRACE) -> None:
    """Ask a process to stop like Ctrl-C would, then terminate it, then kill it."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "nt":
            proc.terminate()
        else:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop within {grace:g} s; terminating it.", flush=True)
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_gone(procs: Sequence[subprocess.Popen], seconds: float) -> None:
    """A Ctrl-C in the terminal reaches the children too: give them a moment to stop by
    themselves, so each gets one interrupt, not two."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.05)


def run_with_comfyui(args: argparse.Namespace, comfy_args: list[str]) -> int:
    comfyui = find_comfyui(args.comfyui)
    if args.python:
        python, how = args.python, "--python"
    else:
        python, how = find_python(comfyui)
    port = int(_option(comfy_args, "--port") or args.port)
    host = page_host(comfy_args)
    if port_open(host, port):
        print(f"error: something already answers on port {port} (a ComfyUI already "
              "running?). Stop it or pick another port with --port.", file=sys.stderr)
        return 2
    if not pack_is_installed(comfyui, comfy_args):
        print(f"warning: this pack ({ROOT}) is not in {comfyui / 'custom_nodes'}: ComfyUI "
              "will start without the Runware nodes.", flush=True)

    key = "offline-" + secrets.token_hex(12)
    double_port = args.double_port or free_port()
    api_url = f"http://127.0.0.1:{double_port}/v1"
    cache_dir = comfyui_output_dir(comfyui, comfy_args) / "runware_offline"
    embedded = "python_embeded" in how
    print(f"Runware Ovi + sync-3 {pack_version()}: offline Runware for {comfyui}\n"
          f"  Python:      {python} ({how})\n"
          f"  Runware:     {api_url} (local double, nothing is billed)\n"
          f"  Result cache for this run: {cache_dir}", flush=True)

    double_cmd = [python, *(["-s"] if embedded else []), str(ROOT / "offline_runware.py"),
                  "--host", "127.0.0.1", "--port", str(double_port), "--key", key]
    if args.job_seconds is not None:
        double_cmd += ["--job-seconds", str(args.job_seconds)]
    comfy_cmd = [python, *(["-s"] if embedded else []), "main.py", "--port", str(port),
                 *comfy_args]
    comfy_env = comfyui_environment(os.environ, api_url=api_url, api_key=key,
                                    cache_dir=cache_dir)

    previous = {}
    for name in ("SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            previous[name] = signal.signal(getattr(signal, name), _raise_stop)
    procs: list[tuple[subprocess.Popen, str]] = []
    try:
        # Its stdout only says which URL to set, which is done here; its log stays visible.
        double = subprocess.Popen(double_cmd, cwd=str(ROOT), stdout=subprocess.DEVNULL)
        procs.append((double, "The offline double"))
        while not port_open("127.0.0.1", double_port):
            if double.poll() is not None:
                print("error: the offline double did not start (see above).",
                      file=sys.stderr, flush=True)
                return 1
            time.sleep(0.1)
        comfy = subprocess.Popen(comfy_cmd, cwd=str(comfyui), env=comfy_env)
        procs.insert(0, (comfy, "ComfyUI"))
        url = f"http://{host}:{port}/"
        print(f"Starting ComfyUI; its page will be at {url}", flush=True)
        ready = False
        while True:
            if comfy.poll() is not None:
                print(f"ComfyUI exited (code {comfy.returncode}); stopping the offline "
                      "double.", flush=True)
                return comfy.returncode
            if double.poll() is not None:
                print(f"The offline double stopped (code {double.returncode}); stopping "
                      "ComfyUI.", flush=True)
                return 1
            if not ready and port_open(host, port):
                ready = True
                print(f"\nComfyUI is ready: {url}\nOpen it, load a Runware template "
                      "(Workflow -> Browse Templates) and queue it: it runs for free.\n"
                      "Ctrl-C stops ComfyUI and the offline double.\n", flush=True)
            time.sleep(0.2)
    except (KeyboardInterrupt, _Stop):
        print("\nStopping ComfyUI and the offline double...", flush=True)
        _wait_gone([p for p, _ in procs], 2.0)
        return 0
    finally:
        try:
            for proc, name in procs:
                stop_process(proc, name)
        except (KeyboardInterrupt, _Stop):  # a second Ctrl-C: no more waiting
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


# -- command line -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offline_runware.py",
        description="Try the Runware nodes for free: a local Runware double, alone or "
                    "together with your ComfyUI.",
        epilog="Without --comfyui only the double runs (default port 8765); its options: "
               "offline_runware.py --help-double.",
    )
    parser.add_argument("--comfyui", metavar="DIR",
                        help="your ComfyUI folder (or the portable build's folder): start "
                             "it pointed at the double; Ctrl-C stops both")
    parser.add_argument("--port", type=int, default=DEFAULT_COMFYUI_PORT,
                        help="ComfyUI's port (default 8188)")
    parser.add_argument("--python", help="the Python that runs ComfyUI (default: found "
                                         "beside ComfyUI, else this one)")
    parser.add_argument("--double-port", type=int, default=0,
                        help="the double's port (default: any free port)")
    parser.add_argument("--job-seconds", type=float, default=None,
                        help="how long each pretend job runs (default 5)")
    parser.add_argument("--version", action="version", version=pack_version())
    parser.add_argument("--help-double", action="store_true",
                        help="the standalone double's options")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Started from a background shell, Python inherits "ignore Ctrl-C" (and so would its
    # children); Ctrl-C must always stop the launcher, the double and ComfyUI.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, comfy_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) \
        if "--" in argv else (argv, [])
    launching = any(a == "--comfyui" or a.startswith("--comfyui=") for a in ours)
    if not launching:
        if "--help-double" in ours:
            return run_double(["--help"])
        if "--version" not in ours and "-h" not in ours and "--help" not in ours:
            return run_double(argv)  # the standalone double, exactly as before
    args = build_parser().parse_args(ours)
    return run_with_comfyui(args, comfy_args)


if __name__ == "__main__":
    sys.exit(main())
