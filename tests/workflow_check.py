"""Check a UI-format workflow (what ``example_workflows/*.json`` holds) against node definitions.

A workflow in the UI ("LiteGraph") format is what the ComfyUI page loads and saves: ``nodes``
with ``widgets_values`` stored **by position**, ``inputs`` / ``outputs`` slot entries, and a
``links`` table of ``[id, from_node, from_slot, to_node, to_slot, type]``. The page does not
complain when a value lands in the wrong widget; it silently shows it there. So we check here
what the page would otherwise get wrong quietly.

How the page turns a node definition into widgets (ComfyUI_frontend 1.27.10, the version
ComfyUI v0.3.64 pins in ``requirements.txt:1``; paths are inside that frontend's source):

- Inputs are created in ``input_order``: required, then optional (``utils/nodeDefOrderingUtil.ts``
  ``getOrderedInputSpecs``); hidden inputs get nothing. First every socket-only input gets a
  slot, then every widget input gets a widget *and* a slot (``services/litegraphService.ts``
  ``#addInputs`` / ``#addInputSocket`` / ``#addInputWidget``). Optional inputs get slot shape 7
  (hollow circle), list outputs (``OUTPUT_IS_LIST``) shape 6 (grid).
- Widget types are INT, FLOAT, STRING, BOOLEAN and COMBO (a list of options, or V3's
  ``"COMBO"`` with ``options``); ``forceInput`` makes a widget type socket-only
  (``scripts/widgets.ts`` ``ComfyWidgets``).
- An INT input with ``control_after_generate``, or named ``seed`` / ``noise_seed`` unless
  ``control_after_generate`` is False, gets a second widget right after it holding
  fixed / increment / decrement / randomize (``useIntWidget.ts``, ``addValueControlWidget``);
  a COMBO with ``control_after_generate`` gets that plus a filter-list string
  (``useComboWidget.ts``, ``scripts/widgets.ts`` ``addValueControlWidgets``).
- A required COMBO with ``image_upload`` / ``video_upload`` / ``animated_image_upload`` gets an
  extra ``upload`` button widget, added after all other inputs; its saved value is the string
  ``"image"`` (``extensions/core/uploadImage.ts``, ``useImageUploadWidget.ts``).
- ``SaveAudio`` / ``PreviewAudio`` / ``LoadAudio`` get an ``audioUI`` widget, added after all
  other inputs, with ``serialize = false`` (``extensions/core/uploadAudio.ts``, extension
  ``Comfy.AudioWidget``). A required input named ``audio`` with ``audio_upload`` (LoadAudio)
  then gets an ``upload`` button after it (extension ``Comfy.UploadAudio``, value ``''``).
- Saving (``LGraphNode.serialize``) writes ``widgets_values[i]`` at the widget's index in
  *all* widgets and skips ``serialize === false`` ones, so a skipped widget leaves a hole
  that JSON writes as ``null``, and a trailing one leaves nothing. Hence SaveAudio saves
  ``[filename_prefix]``, PreviewAudio ``[]``, and LoadAudio ``[file, null, upload]`` where
  upload is ``""`` on a freshly added node, or ``null`` once a file holding ``null`` there was
  loaded (as every official template does: ``video_wan2_2_14B_s2v.json`` of
  comfyui-workflow-templates 0.1.95, saved by frontend 1.27.10, has
  ``["music.MP3", null, null]``).
- Loading (``LGraphNode.configure``) assigns ``widgets_values[i]`` to the i-th serialisable
  widget; a linked widget input keeps its widget and its value. Slots are matched to the
  definition by input name, and saved files keep only the *linked* widget-input slots
  (``utils/litegraphUtil.ts`` ``compressWidgetInputSlots``), with the link's ``to_slot`` the
  index in that compressed list.
- A link is valid when the types are equal, either is ``*`` / empty, or comma-separated unions
  overlap (``LiteGraphGlobal.isValidConnection``; the server's ``validate_node_input`` in
  ComfyUI ``comfy_execution/validation.py:4``).

Not modelled: subgraphs (``definitions``), group nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
SEED_NAMES = ("seed", "noise_seed")
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
AUDIO_UPLOAD_FLAG = "audio_upload"  # only on a required input named "audio" (uploadAudio.ts)
# A COMBO listing the files of the user's input folder (LoadImage, LoadVideo): its options
# depend on the machine, so any non-empty string is accepted.
FILES = "<files in ComfyUI's input folder>"
JS_MAX_SAFE_INTEGER = 2**53 - 1  # the page holds numbers as JS doubles
LINK_ANY = ("*", "")


# --------------------------------------------------------------------------------------------
# Node descriptions
#
# One shape for every node, built from what ComfyUI's /object_info sends (server.py:592-624):
#   {"inputs": [{"name", "type", "optional", "widget", "choices", "default", "min", "max",
#                "control", "upload"}, ... in the page's order],
#    "outputs": [{"name", "type", "is_list"}, ...]}
# --------------------------------------------------------------------------------------------


def _describe_input(name: str, spec: Any, optional: bool) -> dict[str, Any]:
    if isinstance(spec, str):
        spec = (spec,)
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    choices: list | str | None = None
    if isinstance(kind, (list, tuple)):
        choices, kind = list(kind), "COMBO"
    elif kind == "COMBO":
        choices = list(opts.get("options", []))
    kind = str(kind)
    upload: str | None = None  # which upload button the page adds: "image" or "audio"
    if kind == "COMBO" and any(opts.get(flag) for flag in UPLOAD_FLAGS):
        upload = "image"
    elif name == "audio" and opts.get(AUDIO_UPLOAD_FLAG) is True:
        upload = "audio"
    if upload and kind == "COMBO":
        choices = FILES  # the options are whatever files this machine has
    widget = kind in WIDGET_TYPES and not opts.get("forceInput", False)
    control_opt = opts.get("control_after_generate")
    control = bool(control_opt) if control_opt is not None else (
        kind == "INT" and name in SEED_NAMES)
    desc: dict[str, Any] = {
        "name": name,
        "type": kind,
        "optional": optional,
        "widget": widget,
        "choices": choices,
        "default": opts.get("default"),
        "min": opts.get("min"),
        "max": opts.get("max"),
        "control": widget and control and kind in ("INT", "COMBO"),
        "upload": None if optional else upload,
    }
    return desc


def describe_node_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """The description of one node from its /object_info entry (V1 keys)."""
    inputs: list[dict[str, Any]] = []
    spec = info.get("input", {})
    for section, optional in (("required", False), ("optional", True)):
        for name, input_spec in (spec.get(section) or {}).items():
            inputs.append(_describe_input(name, input_spec, optional))
    types = list(info.get("output", ()))
    names = list(info.get("output_name") or types)
    is_list = list(info.get("output_is_list") or [False] * len(types))
    outputs = [
        {"name": str(n), "type": str(t), "is_list": bool(lst)}
        for n, t, lst in zip(names, types, is_list, strict=True)
    ]
    return {"inputs": inputs, "outputs": outputs}


def describe_v1_class(cls: type) -> dict[str, Any]:
    """Describe a V1 node class the way ComfyUI's server.py ``node_info`` reports it."""
    types = tuple(cls.RETURN_TYPES)
    return describe_node_info({
        "input": cls.INPUT_TYPES(),
        "output": types,
        "output_name": tuple(getattr(cls, "RETURN_NAMES", None) or types),
        "output_is_list": tuple(getattr(cls, "OUTPUT_IS_LIST", None) or (False,) * len(types)),
    })


def node_defs_from_classes(mappings: Mapping[str, type]) -> dict[str, dict[str, Any]]:
    """Descriptions of every class in a ``NODE_CLASS_MAPPINGS``."""
    return {node_id: describe_v1_class(cls) for node_id, cls in mappings.items()}


# Hand-copied from ComfyUI v0.3.64 (/work/ComfyUI, commit a125cd84). Tooltips left out.
# A test (test_workflows.py, needs COMFYUI_PATH) compares this table with the real classes.
_VIDEO_CONTAINERS = ["auto", "mp4"]  # comfy_api/latest/_util/video_types.py:19-28
_VIDEO_CODECS = ["auto", "h264"]  # comfy_api/latest/_util/video_types.py:8-17

CORE_NODE_INFO: dict[str, dict[str, Any]] = {
    # nodes.py:1630-1642 (LoadImage.INPUT_TYPES lists the input folder's images)
    "LoadImage": {
        "input": {"required": {"image": ([], {"image_upload": True})}},
        "output": ["IMAGE", "MASK"],
    },
    # nodes.py:1561-1583
    "SaveImage": {
        "input": {"required": {
            "images": ("IMAGE",),
            "filename_prefix": ("STRING", {"default": "ComfyUI"}),
        }},
        "output": [],
    },
    # nodes.py:1616-1628
    "PreviewImage": {"input": {"required": {"images": ("IMAGE",)}}, "output": []},
    # comfy_extras/nodes_audio.py:196-210
    "SaveAudio": {
        "input": {"required": {
            "audio": ("AUDIO",),
            "filename_prefix": ("STRING", {"default": "audio/ComfyUI"}),
        }},
        "output": [],
    },
    # comfy_extras/nodes_audio.py:270-281
    "PreviewAudio": {"input": {"required": {"audio": ("AUDIO",)}}, "output": []},
    # comfy_extras/nodes_video.py:71-87 (V3 node; V1 view: comfy_api/latest/_io.py:1107-1140)
    "SaveVideo": {
        "input": {"required": {
            "video": ("VIDEO",),
            "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
            "format": ("COMBO", {"options": _VIDEO_CONTAINERS, "default": "auto"}),
            "codec": ("COMBO", {"options": _VIDEO_CODECS, "default": "auto"}),
        }},
        "output": [],
    },
    # comfy_extras/nodes_video.py:119-134
    "CreateVideo": {
        "input": {
            "required": {
                "images": ("IMAGE",),
                "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0}),
            },
            "optional": {"audio": ("AUDIO",)},
        },
        "output": ["VIDEO"],
        "output_name": ["VIDEO"],
    },
    # comfy_extras/nodes_video.py:143-158
    "GetVideoComponents": {
        "input": {"required": {"video": ("VIDEO",)}},
        "output": ["IMAGE", "AUDIO", "FLOAT"],
        "output_name": ["images", "audio", "fps"],
    },
    # comfy_extras/nodes_audio.py:319-328 (options: the input folder's audio and video files)
    "LoadAudio": {
        "input": {"required": {"audio": ([], {"audio_upload": True})}},
        "output": ["AUDIO"],
    },
    # comfy_extras/nodes_video.py:167-182 (options: the input folder's videos)
    "LoadVideo": {
        "input": {"required": {"file": ("COMBO", {"options": [], "video_upload": True})}},
        "output": ["VIDEO"],
        "output_name": ["VIDEO"],
    },
}
CORE_NODE_DEFS: dict[str, dict[str, Any]] = {
    node_id: describe_node_info(info) for node_id, info in CORE_NODE_INFO.items()
}

# Nodes that exist only in the page (virtual: never sent to the server). ComfyUI_frontend
# 1.27.10 extensions/core/noteNode.ts: one multiline STRING widget "text", no slots.
FRONTEND_NODE_DEFS: dict[str, dict[str, Any]] = {
    node_id: describe_node_info({"input": {"required": {"text": ("STRING", {"default": ""})}},
                                 "output": []})
    for node_id in ("Note", "MarkdownNote")
}


def all_node_defs(mappings: Mapping[str, type]) -> dict[str, dict[str, Any]]:
    """Our nodes plus the core and page-only nodes a workflow may use."""
    return {**CORE_NODE_DEFS, **FRONTEND_NODE_DEFS, **node_defs_from_classes(mappings)}


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


def widget_slots(node_def: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, kind, input)`` for each ``widgets_values`` position, in order.

    kind is "value" (the input's own value), "control" (control_after_generate), "filter"
    (a COMBO's control_filter_list), "unsaved" (LoadAudio's audioUI: always ``null``) or
    "upload".
    """
    slots: list[tuple[str, str, dict[str, Any]]] = []
    upload: dict[str, Any] | None = None
    for inp in node_def["inputs"]:
        if not inp["widget"]:
            continue
        slots.append((inp["name"], "value", inp))
        if inp["control"]:
            slots.append((f"{inp['name']} control_after_generate", "control", inp))
            if inp["type"] == "COMBO":  # addValueControlWidgets adds a filter for combos
                slots.append((f"{inp['name']} control_filter_list", "filter", inp))
        if inp["upload"] and upload is None:
            upload = inp
    if upload is not None:
        if upload["upload"] == "audio":
            slots.append(("audioUI", "unsaved", upload))
        slots.append(("upload", "upload", upload))
    return slots


def types_compatible(a: str, b: str) -> bool:
    """Equal, a wildcard, or overlapping comma-separated unions."""
    if a in LINK_ANY or b in LINK_ANY or a == b:
        return True
    return bool({t.strip() for t in a.split(",")} & {t.strip() for t in b.split(",")})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_value(where: str, value: Any, inp: Mapping[str, Any]) -> list[str]:
    kind = inp["type"]
    if kind == "INT":
        if not (_is_number(value) and float(value).is_integer()):
            return [f"{where}: {value!r} is not an integer"]
    elif kind == "FLOAT":
        if not _is_number(value) or not math.isfinite(value):
            return [f"{where}: {value!r} is not a number"]
    elif kind == "STRING":
        if not isinstance(value, str):
            return [f"{where}: {value!r} is not a string"]
        return []
    elif kind == "BOOLEAN":
        if not isinstance(value, bool):
            return [f"{where}: {value!r} is not true/false"]
        return []
    elif kind == "COMBO":
        choices = inp["choices"]
        if choices == FILES:
            if not isinstance(value, str) or not value:
                return [f"{where}: {value!r} is not a file name"]
        elif value not in (choices or []):
            return [f"{where}: {value!r} is not one of {choices}"]
        return []
    problems = []
    if inp["min"] is not None and value < inp["min"]:
        problems.append(f"{where}: {value!r} is below the minimum {inp['min']}")
    if inp["max"] is not None and value > inp["max"]:
        problems.append(f"{where}: {value!r} is above the maximum {inp['max']}")
    if kind == "INT" and abs(value) > JS_MAX_SAFE_INTEGER:
        problems.append(f"{where}: {value!r} is beyond 2**53-1 and changes when the page "
                        "loads it (JS numbers are doubles)")
    return problems


def _check_widgets(label: str, node: Mapping[str, Any], node_def: Mapping[str, Any]) -> list[str]:
    slots = widget_slots(node_def)
    values = node.get("widgets_values")
    if values is None:
        values = []
    if isinstance(values, dict):
        return [f"{label}: widgets_values is an object; the page reads it by position"]
    if not isinstance(values, list):
        return [f"{label}: widgets_values is not a list"]
    # A workflow saved before an optional input was added at the end has fewer values:
    # the page assigns them by position and the new widgets keep their defaults.
    # (A value missing in the middle shifts the rest: then the values before the end do not
    # fit their widgets, and the length is reported.)
    later = slots[len(values):]
    added_later = all(inp["optional"] and kind in ("value", "control", "filter")
                      for _, kind, inp in later)
    too_many_or_few = [f"{label}: widgets_values has {len(values)} values, the node has "
                       f"{len(slots)} widgets {[name for name, _, _ in slots]}"]
    if len(values) > len(slots) or (later and not added_later):
        return too_many_or_few
    problems = _check_widget_values(label, slots[:len(values)], values)
    return too_many_or_few if later and problems else problems


def _check_widget_values(label: str, slots: list[tuple[str, str, dict[str, Any]]],
                         values: list[Any]) -> list[str]:
    problems: list[str] = []
    for (name, kind, inp), value in zip(slots, values, strict=True):
        where = f"{label} widget {name!r}"
        if kind == "value":
            problems += _check_value(where, value, inp)
        elif kind == "control":
            allowed = CONTROL_VALUES + (("increment-wrap",) if inp["type"] == "COMBO" else ())
            if value not in allowed:
                problems.append(f"{where}: {value!r} is not one of {list(allowed)}")
        elif kind == "filter":
            if not isinstance(value, str):
                problems.append(f"{where}: {value!r} is not a string")
        elif kind == "unsaved":
            if value is not None:
                problems.append(f"{where}: {value!r}; the page never saves this widget, so "
                                "its place holds null")
        elif inp["upload"] == "audio":
            if value not in ("", None):
                problems.append(f"{where}: {value!r} is not the audio upload button's value "
                                "(\"\" or null)")
        elif not isinstance(value, str):
            problems.append(f"{where}: {value!r} is not the upload button's value (\"image\")")
    return problems


def _link_table(data: Mapping[str, Any], problems: list[str]) -> dict[int, list]:
    links: dict[int, list] = {}
    raw = data.get("links")
    if not isinstance(raw, list):
        problems.append("workflow: 'links' is not a list")
        return links
    for entry in raw:
        if not (isinstance(entry, list) and len(entry) == 6 and isinstance(entry[0], int)):
            problems.append(f"link {entry!r}: not [id, from_node, from_slot, to_node, to_slot, "
                            "type]")
            continue
        if entry[0] in links:
            problems.append(f"link {entry[0]}: the id is used twice")
            continue
        links[entry[0]] = entry
    return links


def check_workflow(data: Mapping[str, Any], node_defs: Mapping[str, Mapping[str, Any]]
                   ) -> list[str]:
    """Everything that would make the page load this workflow wrongly, as readable lines."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        return ["workflow: not a JSON object"]
    if data.get("definitions", {}).get("subgraphs"):
        problems.append("workflow: subgraphs are not checked by this checker")
    if not isinstance(data.get("version"), (int, float)):
        problems.append("workflow: no numeric 'version' (the UI format has 0.4)")
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, list):
        return problems + ["workflow: 'nodes' is not a list"]
    links = _link_table(data, problems)

    nodes: dict[Any, Mapping[str, Any]] = {}
    for node in nodes_raw:
        if not isinstance(node, Mapping) or "id" not in node or "type" not in node:
            problems.append(f"node {node!r:.60}: no id or type")
            continue
        if node["id"] in nodes:
            problems.append(f"node {node['id']}: the id is used twice")
            continue
        nodes[node["id"]] = node

    numeric_ids = [i for i in nodes if isinstance(i, int)]
    if numeric_ids and not (isinstance(data.get("last_node_id"), int)
                            and data["last_node_id"] >= max(numeric_ids)):
        problems.append(f"workflow: last_node_id {data.get('last_node_id')!r} is below the "
                        f"largest node id {max(numeric_ids)} (new nodes would reuse ids)")
    if links and not (isinstance(data.get("last_link_id"), int)
                      and data["last_link_id"] >= max(links)):
        problems.append(f"workflow: last_link_id {data.get('last_link_id')!r} is below the "
                        f"largest link id {max(links)}")

    referenced: dict[int, list[str]] = {link_id: [] for link_id in links}
    for node_id, node in nodes.items():
        label = f"node {node_id} ({node['type']})"
        node_def = node_defs.get(node["type"])
        if node_def is None:
            problems.append(f"{label}: unknown node type {node['type']!r} (the page shows it "
                            "red as a missing node)")
            _record_links(node, links, referenced)
            continue
        problems += _check_widgets(label, node, node_def)
        problems += _check_inputs(label, node, node_def, links, referenced)
        problems += _check_outputs(label, node, node_def, links, referenced)
        sr_name = (node.get("properties") or {}).get("Node name for S&R")
        if sr_name is not None and sr_name != node["type"]:
            problems.append(f"{label}: properties 'Node name for S&R' is {sr_name!r}")

    for link_id, entry in links.items():
        problems += _check_link(entry, nodes, node_defs)
        ends = referenced[link_id]
        if "input" not in ends:
            problems.append(f"link {link_id}: no node input refers to it (dangling)")
        if "output" not in ends:
            problems.append(f"link {link_id}: no node output refers to it (dangling)")
    return problems


def _record_links(node: Mapping[str, Any], links: Mapping[int, list],
                  referenced: dict[int, list[str]]) -> None:
    """Note which links a node we cannot check refers to (so they are not called dangling)."""
    for entry in node.get("inputs") or []:
        if entry.get("link") in links:
            referenced[entry["link"]].append("input")
    for entry in node.get("outputs") or []:
        for link_id in _as_list(entry.get("links")):
            if link_id in links:
                referenced[link_id].append("output")


def _inputs_by_name(node_def: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {inp["name"]: inp for inp in node_def["inputs"]}


def _check_inputs(label: str, node: Mapping[str, Any], node_def: Mapping[str, Any],
                  links: Mapping[int, list], referenced: dict[int, list[str]]) -> list[str]:
    problems: list[str] = []
    defined = _inputs_by_name(node_def)
    entries = node.get("inputs") or []
    seen: dict[str, Any] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name")
        inp = defined.get(name)
        where = f"{label} input {name!r}"
        if inp is None:
            problems.append(f"{where}: the node has no such input")
            continue
        if name in seen:
            problems.append(f"{where}: listed twice")
            continue
        seen[name] = entry.get("link")
        has_widget = isinstance(entry.get("widget"), Mapping)
        if inp["widget"] and not has_widget:
            problems.append(f"{where}: a widget input needs \"widget\": {{\"name\": {name!r}}}")
        if has_widget and (not inp["widget"] or entry["widget"].get("name") != name):
            problems.append(f"{where}: \"widget\" {entry['widget']!r} does not match the node")
        if "type" in entry and not types_compatible(str(entry["type"]), inp["type"]):
            problems.append(f"{where}: type {entry['type']!r}, the node says {inp['type']!r}")
        link_id = entry.get("link")
        if link_id is None:
            continue
        if link_id not in links:
            problems.append(f"{where}: link {link_id} is not in the links table")
            continue
        referenced[link_id].append("input")
        _, _, _, to_node, to_slot, _ = links[link_id]
        if to_node != node["id"] or to_slot != index:
            problems.append(f"{where}: link {link_id} goes to node {to_node} slot {to_slot}, "
                            f"but this is node {node['id']} slot {index}")
    for inp in node_def["inputs"]:
        if inp["optional"] or inp["widget"]:
            continue
        if seen.get(inp["name"]) is None:
            problems.append(f"{label} input {inp['name']!r}: required {inp['type']} input is "
                            "not connected")
    return problems


def _check_outputs(label: str, node: Mapping[str, Any], node_def: Mapping[str, Any],
                   links: Mapping[int, list], referenced: dict[int, list[str]]) -> list[str]:
    problems: list[str] = []
    defined = node_def["outputs"]
    entries = node.get("outputs") or []
    if len(entries) != len(defined):
        problems.append(f"{label}: {len(entries)} outputs listed, the node has {len(defined)} "
                        f"{[o['name'] for o in defined]}")
    for index, entry in enumerate(entries):
        where = f"{label} output {index} {entry.get('name')!r}"
        out = defined[index] if index < len(defined) else None
        if out is not None:
            if entry.get("name") != out["name"]:
                problems.append(f"{where}: the node calls output {index} {out['name']!r}")
            if not types_compatible(str(entry.get("type", "")), out["type"]):
                problems.append(f"{where}: type {entry.get('type')!r}, the node says "
                                f"{out['type']!r}")
        for link_id in _as_list(entry.get("links")):
            if link_id not in links:
                problems.append(f"{where}: link {link_id} is not in the links table")
                continue
            referenced[link_id].append("output")
            _, from_node, from_slot, _, _, _ = links[link_id]
            if from_node != node["id"] or from_slot != index:
                problems.append(f"{where}: link {link_id} comes from node {from_node} slot "
                                f"{from_slot}, but this is node {node['id']} slot {index}")
    return problems


def _as_list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else []


def _check_link(entry: list, nodes: Mapping[Any, Mapping[str, Any]],
                node_defs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    link_id, from_id, from_slot, to_id, to_slot, link_type = entry
    where = f"link {link_id} ({from_id}:{from_slot} -> {to_id}:{to_slot}, {link_type})"
    problems: list[str] = []
    source, target = nodes.get(from_id), nodes.get(to_id)
    if source is None:
        problems.append(f"{where}: source node {from_id} does not exist")
    if target is None:
        problems.append(f"{where}: target node {to_id} does not exist")
    if problems:
        return problems
    source_def, target_def = node_defs.get(source["type"]), node_defs.get(target["type"])
    if source_def is not None:
        outputs = source_def["outputs"]
        if not (isinstance(from_slot, int) and 0 <= from_slot < len(outputs)):
            problems.append(f"{where}: {source['type']} has no output {from_slot}")
        else:
            out_type = outputs[from_slot]["type"]
            if not types_compatible(str(link_type), out_type):
                problems.append(f"{where}: the link says {link_type}, {source['type']} output "
                                f"{outputs[from_slot]['name']!r} is {out_type}")
    else:
        out_type = None
    if target_def is not None:
        entries = target.get("inputs") or []
        if not (isinstance(to_slot, int) and 0 <= to_slot < len(entries)):
            problems.append(f"{where}: node {to_id} has no input slot {to_slot}")
        else:
            inp = _inputs_by_name(target_def).get(entries[to_slot].get("name"))
            if inp is not None:
                in_type = inp["type"]
                if not types_compatible(str(link_type), in_type):
                    problems.append(f"{where}: {target['type']} input {inp['name']!r} takes "
                                    f"{in_type}, the link carries {link_type}")
                elif out_type is not None and not types_compatible(out_type, in_type):
                    problems.append(f"{where}: {out_type} cannot go into {target['type']} "
                                    f"input {inp['name']!r} ({in_type})")
    return problems
