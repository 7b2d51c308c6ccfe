"""Start "offline Runware": the pack's local Runware double, for building graphs for free.

    python offline_runware.py --port 8765 --key offline
    RUNWARE_API_URL=http://127.0.0.1:8765/v1 RUNWARE_API_KEY=offline python main.py

Run it with ComfyUI's Python (it needs the pack's requirements). ComfyUI never imports this
file; it loads the pack by path, like ComfyUI does, so the pack folder may have any name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def _load_pack():
    root = Path(__file__).resolve().parent
    name = "runware_ovi_sync_offline"
    spec = importlib.util.spec_from_file_location(
        name, root / "__init__.py", submodule_search_locations=[str(root)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.nodes.runware.double.cli")


if __name__ == "__main__":
    sys.exit(_load_pack().main())
