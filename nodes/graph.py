"""The running prompt graph: which outputs of a node are linked (node layer only).

IMAGE and AUDIO are decoded only when something is connected to them, so the model nodes
ask which of their output slots the prompt links; ``IS_CHANGED`` folds that into ComfyUI's
cache key, so a newly linked output re-runs the node (which reuses the cached file, no
charge).
"""

from __future__ import annotations

from typing import Any

from . import host


def linked_outputs(prompt: Any, unique_id: str | None, count: int) -> set[int] | None:
    """The output slots (0..count-1) of node ``unique_id`` that the running prompt links.

    ``prompt`` is the hidden PROMPT (API format ``{id: {"inputs": {name: value or
    [origin_id, slot]}}}``) or a DYNPROMPT (which also sees nodes made by expansion).
    Ids are compared as strings, so subgraph ids such as ``"12:5"`` work. None means
    "cannot tell" (no prompt, or this node is not in it): decode everything.
    """
    if unique_id is None or prompt is None:
        return None
    uid = str(unique_id)
    nodes: list[Any]
    if hasattr(prompt, "all_node_ids") and hasattr(prompt, "get_node"):
        ids = list(prompt.all_node_ids())
        if uid not in {str(i) for i in ids}:
            return None
        nodes = [prompt.get_node(i) for i in ids]
    elif isinstance(prompt, dict) and prompt:
        if uid not in {str(k) for k in prompt}:
            return None
        nodes = list(prompt.values())
    else:
        return None
    linked: set[int] = set()
    for node in nodes:
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for value in inputs.values():
            if (isinstance(value, list) and len(value) == 2 and str(value[0]) == uid
                    and isinstance(value[1], (int, float)) and not isinstance(value[1], bool)):
                slot = int(value[1])
                if 0 <= slot < count:
                    linked.add(slot)
    return linked


def outputs_fingerprint(prompt: Any, unique_id: str | None, count: int) -> str:
    """A string for IS_CHANGED: changes when the set of linked outputs changes.

    ComfyUI caches a node by its inputs only; without this, connecting a previously
    unconnected IMAGE output would be served the cached ``None``.
    """
    linked = linked_outputs(prompt, unique_id, count)
    return "all" if linked is None else ",".join(str(s) for s in sorted(linked))


def running_outputs_fingerprint(unique_id: str | None, count: int) -> str:
    """:func:`outputs_fingerprint` of the prompt ComfyUI is running now (IS_CHANGED is
    called with an empty PROMPT, so the running queue item is read instead)."""
    return outputs_fingerprint(host.running_prompt(), unique_id, count)
