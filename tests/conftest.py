"""Load the pack the way ComfyUI does: by path, under a name that is not the repo's.

ComfyUI (nodes.py ``load_custom_node``) imports ``custom_nodes/<folder>/__init__.py`` with
``spec_from_file_location`` under the folder's absolute path, dots replaced by ``_x_``, as
the module name. We do exactly the same, after planting a stand-in for ComfyUI's own
top-level ``nodes`` module, so an absolute ``import nodes`` (or an import by the repo's
name) inside the pack fails here, not on a user's machine.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import video_standins

REPO_ROOT = Path(__file__).resolve().parent.parent
# The pack's one loader lives in offline_runware.py, beside its __init__.py. The repo root
# is on sys.path only while it is imported: "nodes" must stay ComfyUI's name, not the pack's.
sys.path.insert(0, str(REPO_ROOT))
try:
    import offline_runware
finally:
    sys.path.remove(str(REPO_ROOT))

PACK_NAME = offline_runware.comfyui_module_name(REPO_ROOT)


def load_pack() -> types.ModuleType:
    return offline_runware.load_pack(PACK_NAME, comfyui_nodes_stand_in=True)


PACK = load_pack()


def pack_module(dotted: str) -> types.ModuleType:
    """Import a submodule of the pack, e.g. ``pack_module("nodes.runware.client")``."""
    return importlib.import_module(f"{PACK_NAME}.{dotted}")


# No ComfyUI here: VIDEO values are made with stand-ins of its classes (tests/video_standins.py).
video_standins.install(pack_module("nodes.host"))


@pytest.fixture(scope="session")
def pack() -> types.ModuleType:
    return PACK


TEST_KEY = "rw-test-key-0123456789abcdefXYZ"


@pytest.fixture
def double(tmp_path):
    """A fresh local Runware double on a random port, fast jobs, small frames."""
    server = pack_module("nodes.runware.double").RunwareDouble(
        api_key=TEST_KEY, job_seconds=0.3, storage_dir=tmp_path / "double"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_config(double):
    """Client settings pointed at the double, with delays shrunk for tests."""
    config = pack_module("nodes.runware.config").ClientConfig
    return config(
        api_url=double.base_url,
        api_key=TEST_KEY,
        retry_base_delay=0.02,
        retry_max_delay=0.1,
        retry_jitter=0.01,
        poll_initial=0.05,
        poll_max=0.2,
        job_timeout=60.0,
        cancel_interval=0.05,
    )


@pytest.fixture
def env(double, monkeypatch, tmp_path):
    """The node layer pointed at the double, with ComfyUI's folders under tmp_path."""
    monkeypatch.setenv("RUNWARE_API_URL", double.base_url)
    monkeypatch.setenv("RUNWARE_API_KEY", TEST_KEY)
    for name in ("OUTPUT", "TEMP", "USER"):
        monkeypatch.setenv(f"RUNWARE_{name}_DIR", str(tmp_path / name.lower()))
    monkeypatch.delenv("RUNWARE_CACHE_DIR", raising=False)
    double.job_seconds = 0.1
    return double


def node_value(node_id: str, *args, **changes):
    """What a helper node (Accelerator, Delivery, Speaker, TTS, ...) outputs for its
    table's defaults, changed by ``args`` (in input order) and ``changes``."""
    cls = PACK.NODE_CLASS_MAPPINGS[node_id]
    values = {**dict(zip(cls.INPUTS.names, args, strict=False)), **changes}
    return getattr(cls(), cls.FUNCTION)(**values)[0]


def _request(node_id: str, request_type: type, values: dict):
    import dataclasses

    WIDGETS = pack_module("nodes.inputs").WIDGETS  # noqa: N806

    names = {f.name for f in dataclasses.fields(request_type)}
    defaults = {row.name: row.default for row in PACK.NODE_CLASS_MAPPINGS[node_id].INPUTS
                if row.kind in WIDGETS and row.name in names}
    return request_type(**{**defaults, **values})


def ovi_request(**values):
    """An OviRequest: Runware Ovi's widget defaults (its input table), changed by ``values``."""
    return _request("RunwareOvi", pack_module("nodes.runware.tasks").OviRequest, values)


def sync3_request(**values):
    """A Sync3Request: Runware sync-3's widget defaults, changed by ``values``."""
    return _request("RunwareSync3", pack_module("nodes.runware.tasks").Sync3Request, values)


def run_task(config, task: dict, cache_dir, *, uploads=(), reuse: bool = False, **kwargs):
    """A raw ``videoInference`` task (placeholders for ``uploads``) through the production
    path, ``jobs.run_cached_job``: upload, claim, submit, poll, download, verify, record,
    with a result cache of its own in ``cache_dir``. Returns the list of JobResults."""
    import asyncio
    import uuid as uuidlib

    tasks = pack_module("nodes.runware.tasks")
    job = tasks.PreparedJob(task["model"], task, list(uploads))
    cache = pack_module("nodes.runware.cache").ResultCache(
        Path(cache_dir) / f"cache-{uuidlib.uuid4().hex[:8]}")
    return asyncio.run(pack_module("nodes.runware.jobs").run_cached_job(
        job, config=config, cache=cache, reuse=reuse, **kwargs))


def flatten(value, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}: compare request bodies field by field."""
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            out.update(flatten(child, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def pytest_report_header(config):
    """What this run tests against (the floors are in requirements.txt; CI takes the newest
    releases that satisfy them), printed at the top of every run."""
    import aiohttp
    import av
    import numpy
    import torch

    return (f"runtime: torch {torch.__version__}, av {av.__version__}, numpy "
            f"{numpy.__version__}, aiohttp {aiohttp.__version__}")

