"""What ComfyUI reads from every node class, as exact JSON (tuples kept apart from lists).

``tests/fixtures/node_signatures.json`` holds this for every node as it was before the
issue-14 redesign; ``tests/test_node_signatures.py`` keeps the nodes equal to it, byte for
byte. Regenerate it only for a deliberate, reviewed change of a node's public signature:
``python tests/node_signatures.py > tests/fixtures/node_signatures.json``.
"""

from __future__ import annotations

import json
from typing import Any

# The class attributes ComfyUI reads (besides INPUT_TYPES), and the hooks it looks for.
ATTRIBUTES = ("RETURN_TYPES", "RETURN_NAMES", "OUTPUT_TOOLTIPS", "OUTPUT_IS_LIST",
              "DESCRIPTION", "CATEGORY", "FUNCTION", "OUTPUT_NODE", "INPUT_IS_LIST")
HOOKS = ("IS_CHANGED", "VALIDATE_INPUTS", "check_lazy_status")


def exact(value: Any) -> Any:
    """JSON that tells a tuple from a list (ComfyUI reads both, and they differ)."""
    if isinstance(value, tuple):
        return {"tuple": [exact(v) for v in value]}
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, dict):
        return {str(k): exact(v) for k, v in value.items()}
    return value


def signature(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {"INPUT_TYPES": exact(cls.INPUT_TYPES())}
    for name in ATTRIBUTES:
        if hasattr(cls, name):
            out[name] = exact(getattr(cls, name))
    out["hooks"] = [name for name in HOOKS if hasattr(cls, name)]
    return out


def signatures(mappings: dict[str, type]) -> dict[str, Any]:
    return {node_id: signature(cls) for node_id, cls in mappings.items()}


def dump(mappings: dict[str, type]) -> str:
    return json.dumps(signatures(mappings), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import PACK

    sys.stdout.write(dump(PACK.NODE_CLASS_MAPPINGS))
