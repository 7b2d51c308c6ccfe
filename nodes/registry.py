"""One table of every node: id -> (class, display name). Both mappings come from it."""

from __future__ import annotations

_NODES: list[tuple[str, type, str]] = []

NODE_CLASS_MAPPINGS: dict[str, type] = {node_id: cls for node_id, cls, _ in _NODES}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {node_id: name for node_id, _, name in _NODES}
