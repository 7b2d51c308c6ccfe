"""Every shipped workflow loads in the ComfyUI page: known nodes, widget values in the right
places, compatible links. See workflow_check.py for what the page does with a workflow."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PACK, REPO_ROOT, pack_module
from workflow_check import (
    CORE_NODE_DEFS,
    CORE_NODE_INFO,
    FILES,
    all_node_defs,
    check_workflow,
    describe_node_info,
    widget_slots,
)

OUR_CNR_ID = "runware-ovi-sync3"
EXAMPLES_DIR = REPO_ROOT / "example_workflows"
# Workflows shipped by earlier releases: kept so they stay loadable (add, never delete).
OLD_WORKFLOWS_DIR = REPO_ROOT / "tests" / "fixtures" / "workflows"


def _workflow_files() -> list[Path]:
    files = sorted(EXAMPLES_DIR.glob("*.json"))
    if OLD_WORKFLOWS_DIR.is_dir():
        files += sorted(OLD_WORKFLOWS_DIR.rglob("*.json"))
    return files


WORKFLOW_FILES = _workflow_files()


@pytest.fixture(scope="module")
def node_defs() -> dict:
    return all_node_defs(PACK.NODE_CLASS_MAPPINGS)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO_ROOT)) for p in paths]


def test_there_are_example_workflows():
    names = {p.name for p in EXAMPLES_DIR.glob("*.json")}
    assert {"ovi_text_to_video.json", "ovi_image_to_video.json",
            "ovi_frames_and_audio.json"} <= names
    assert {"sync3_video_audio.json", "sync3_text_to_speech.json", "sync3_segments.json",
            "ovi_to_sync3.json"} <= names


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=_ids(WORKFLOW_FILES))
def test_workflow_loads_cleanly(path: Path, node_defs: dict):
    problems = check_workflow(_load(path), node_defs)
    assert problems == [], "\n".join(problems)


EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_ids(EXAMPLE_FILES))
def test_example_conventions(path: Path, node_defs: dict):
    """Our nodes carry the registry id, seeds are saved "fixed", Ovi prompts are well tagged."""
    data = _load(path)
    ours = set(PACK.NODE_CLASS_MAPPINGS)
    find_tag_problems = pack_module("nodes.runware.ovi_prompt").find_tag_problems
    assert any(node["type"] in ours for node in data["nodes"])
    for node in data["nodes"]:
        if node["type"] not in ours:
            continue
        props = node.get("properties", {})
        assert props.get("cnr_id") == OUR_CNR_ID, node["id"]
        assert isinstance(props.get("ver"), str) and props["ver"], node["id"]
        slots = widget_slots(node_defs[node["type"]])
        values = dict(zip([name for name, _, _ in slots], node["widgets_values"], strict=True))
        for name, kind, _ in slots:
            if kind == "control":
                assert values[name] == "fixed", f"node {node['id']}: {name} must be saved fixed"
        if node["type"] == "RunwareOvi":
            prompt_linked = any(i["name"] == "prompt" and i.get("link") is not None
                                for i in node.get("inputs", []))
            assert values["prompt"].strip()
            assert find_tag_problems(values["prompt"]) == []
            if not prompt_linked:
                assert "<S>" in values["prompt"] and "<AUDCAP>" in values["prompt"]


def _linked(node: dict, name: str) -> bool:
    return any(i["name"] == name and i.get("link") is not None for i in node.get("inputs", []))


def _sources(data: dict, node: dict) -> dict[str, str]:
    """Input name -> type of the node feeding it, for each linked input of ``node``."""
    by_id = {n["id"]: n for n in data["nodes"]}
    return {node["inputs"][to_slot]["name"]: by_id[from_node]["type"]
            for _, from_node, _, to_node, to_slot, _ in data["links"] if to_node == node["id"]}


SYNC3_EXAMPLES = [p for p in EXAMPLE_FILES
                  if any(n["type"] == "RunwareSync3" for n in _load(p)["nodes"])]


@pytest.mark.parametrize("path", SYNC3_EXAMPLES, ids=_ids(SYNC3_EXAMPLES))
def test_sync3_example_gives_one_video_and_one_voice(path: Path, node_defs: dict):
    """What RunwareSync3 checks before paying, applied to the saved graph: one video source,
    one voice source, tts only with speech_text; segments both-or-neither audio ranges."""
    data = _load(path)
    check_sync3_sources = pack_module("nodes.runware.tasks").check_sync3_sources
    for node in data["nodes"]:
        slots = widget_slots(node_defs[node["type"]]) if node["type"] in node_defs else []
        values = dict(zip([name for name, _, _ in slots], node.get("widgets_values") or [],
                          strict=False))
        if node["type"] == "RunwareSync3":
            speech = _linked(node, "speech_text") or bool(values["speech_text"].strip())
            # raises ValidationError (the node's own message) when the graph breaks a rule
            check_sync3_sources(
                video=_linked(node, "video"), images=_linked(node, "images"),
                audio=_linked(node, "audio"), speech_text=speech,
                segments=_linked(node, "segments"), tts=_linked(node, "tts"),
            )
        elif node["type"] == "RunwareSync3Segment":
            assert values["end_time"] > values["start_time"], node["id"]
            assert (values["audio_start_time"] >= 0) == (values["audio_end_time"] >= 0)
            if values["audio_start_time"] >= 0:
                assert values["audio_end_time"] > values["audio_start_time"], node["id"]


def test_sync3_examples_wire_what_their_names_say():
    def sync3(name: str) -> tuple[dict, dict]:
        data = _load(EXAMPLES_DIR / name)
        node = _node(data, "RunwareSync3")
        outputs = {next(n["type"] for n in data["nodes"] if n["id"] == to_node)
                   for _, from_node, from_slot, to_node, _, _ in data["links"]
                   if from_node == node["id"] and from_slot == 0}
        assert outputs == {"SaveVideo"}, name
        return data, node

    data, node = sync3("sync3_video_audio.json")
    assert _sources(data, node) == {"video": "LoadVideo", "audio": "LoadAudio"}

    data, node = sync3("sync3_text_to_speech.json")
    assert _sources(data, node) == {"video": "LoadVideo", "tts": "RunwareSync3TTS"}

    data, node = sync3("sync3_segments.json")
    assert _sources(data, node) == {"video": "LoadVideo", "segments": "RunwareSync3Segment"}
    by_id = {n["id"]: n for n in data["nodes"]}

    def source(target: dict, link_type: str) -> dict:
        return by_id[next(lk[1] for lk in data["links"]
                          if lk[3] == target["id"] and lk[5] == link_type)]

    second = source(node, "RUNWARE_SEGMENTS")
    assert _sources(data, second) == {"audio": "LoadAudio", "segments": "RunwareSync3Segment"}
    first = source(second, "RUNWARE_SEGMENTS")
    assert _sources(data, first) == {"audio": "LoadAudio"}
    assert second["widgets_values"][2] >= 0  # audio_start_time: it uses a range of its audio
    audio_files = {source(seg, "AUDIO")["widgets_values"][0] for seg in (first, second)}
    assert len(audio_files) == 2, "two segments with different audio"

    data, node = sync3("ovi_to_sync3.json")
    assert _sources(data, node) == {"video": "RunwareOvi", "audio": "LoadAudio"}
    ovi = _node(data, "RunwareOvi")
    link = next(lk for lk in data["links"]
                if lk[3] == node["id"] and node["inputs"][lk[4]]["name"] == "video")
    assert (link[1], ovi["outputs"][link[2]]["name"]) == (ovi["id"], "video")


def test_frames_and_audio_example_routes_every_media_output():
    data = _load(EXAMPLES_DIR / "ovi_frames_and_audio.json")
    ovi = next(n for n in data["nodes"] if n["type"] == "RunwareOvi")
    by_id = {n["id"]: n for n in data["nodes"]}
    targets = {}
    for _, from_node, from_slot, to_node, _, _ in data["links"]:
        if from_node == ovi["id"]:
            targets[ovi["outputs"][from_slot]["name"]] = by_id[to_node]["type"]
    assert targets == {"video": "SaveVideo", "images": "PreviewImage", "audio": "SaveAudio"}
    assert any(i["name"] == "prompt" and i.get("link") for i in ovi["inputs"])


# --------------------------------------------------------------------------------------------
# The checker catches what it should
# --------------------------------------------------------------------------------------------


@pytest.fixture
def good() -> dict:
    return copy.deepcopy(_load(EXAMPLES_DIR / "ovi_frames_and_audio.json"))


def _node(data: dict, node_type: str) -> dict:
    return next(n for n in data["nodes"] if n["type"] == node_type)


def _only(problems: list[str], *needles: str) -> None:
    assert problems, "the checker found nothing"
    text = "\n".join(problems)
    for needle in needles:
        assert needle in text, text


def test_good_fixture_is_clean(good, node_defs):
    assert check_workflow(good, node_defs) == []


def test_catches_unknown_node_type(good, node_defs):
    _node(good, "PreviewImage")["type"] = "PreviewImageTypo"
    _only(check_workflow(good, node_defs), "unknown node type 'PreviewImageTypo'")


def test_catches_widget_value_out_of_range(good, node_defs):
    _node(good, "RunwareOvi")["widgets_values"][3] = 101  # steps: 1..100
    _only(check_workflow(good, node_defs), "widget 'steps'", "above the maximum 100")


def test_catches_float_below_minimum(good, node_defs):
    _node(good, "RunwareOvi")["widgets_values"][5] = -0.5  # video_cfg_scale: 0..10
    _only(check_workflow(good, node_defs), "widget 'video_cfg_scale'", "below the minimum")


def test_catches_wrong_combo_option(good, node_defs):
    _node(good, "RunwareOvi")["widgets_values"][11] = "mp4"  # output_format: MP4/WEBM/MOV
    _only(check_workflow(good, node_defs), "widget 'output_format'", "'mp4' is not one of")
    save = _node(good, "SaveVideo")
    save["widgets_values"][1] = "webm"
    _only(check_workflow(good, node_defs), "widget 'format'", "'webm'")


def test_catches_widgets_values_one_too_short(good, node_defs):
    values = _node(good, "RunwareOvi")["widgets_values"]
    del values[2]  # drop the seed's control value
    _only(check_workflow(good, node_defs), f"widgets_values has {len(values)} values",
          f"{len(values) + 1} widgets")


def test_catches_bad_seed_control(good, node_defs):
    _node(good, "RunwareOvi")["widgets_values"][2] = "frozen"
    _only(check_workflow(good, node_defs), "seed control_after_generate", "'frozen'")


def test_catches_wrong_value_type(good, node_defs):
    _node(good, "RunwareOvi")["widgets_values"][4] = "24"  # fps is an INT
    _only(check_workflow(good, node_defs), "widget 'fps'", "not an integer")


def test_catches_link_between_incompatible_types(good, node_defs):
    # Ovi's audio output (slot 2) into PreviewImage, which takes IMAGE.
    link = next(lk for lk in good["links"] if lk[3] == _node(good, "PreviewImage")["id"])
    ovi = _node(good, "RunwareOvi")
    ovi["outputs"][1]["links"] = None
    ovi["outputs"][2]["links"].append(link[0])
    link[2], link[5] = 2, "AUDIO"
    _only(check_workflow(good, node_defs), "takes IMAGE, the link carries AUDIO")


def test_catches_link_type_that_lies(good, node_defs):
    link = next(lk for lk in good["links"] if lk[3] == _node(good, "PreviewImage")["id"])
    link[2] = 2  # says IMAGE, but comes from the audio output
    problems = check_workflow(good, node_defs)
    _only(problems, "output 'audio' is AUDIO")


def test_catches_unconnected_required_input_and_dangling_link(good, node_defs):
    _node(good, "SaveVideo")["inputs"][0]["link"] = None
    _only(check_workflow(good, node_defs), "required VIDEO input is not connected",
          "dangling")


def test_catches_link_missing_from_table(good, node_defs):
    good["links"] = [lk for lk in good["links"] if lk[5] != "AUDIO"]
    _only(check_workflow(good, node_defs), "is not in the links table")


def test_catches_link_pointing_at_wrong_slot(good, node_defs):
    link = next(lk for lk in good["links"] if lk[5] == "STRING")
    link[4] = 0  # the prompt is slot 3 (after image, accelerator, delivery)
    _only(check_workflow(good, node_defs), "but this is node")


def test_catches_missing_widget_marker_and_unknown_input(good, node_defs):
    ovi = _node(good, "RunwareOvi")
    prompt = next(i for i in ovi["inputs"] if i["name"] == "prompt")
    del prompt["widget"]
    ovi["inputs"].append({"name": "negative", "type": "STRING", "link": None})
    _only(check_workflow(good, node_defs), "needs \"widget\"", "no such input")


def test_catches_stale_last_ids(good, node_defs):
    good["last_node_id"] = 1
    good["last_link_id"] = 1
    _only(check_workflow(good, node_defs), "last_node_id", "last_link_id")


def test_catches_seed_beyond_javascript_precision(good, node_defs):
    _node(good, "RunwareOvi")["widgets_values"][1] = 2**60
    _only(check_workflow(good, node_defs), "beyond 2**53-1")


def test_load_image_upload_widget_is_modelled():
    slots = widget_slots(CORE_NODE_DEFS["LoadImage"])
    assert [(name, kind) for name, kind, _ in slots] == [("image", "value"), ("upload", "upload")]
    assert slots[0][2]["choices"] == FILES


def test_load_audio_widgets_are_modelled(node_defs):
    slots = widget_slots(CORE_NODE_DEFS["LoadAudio"])
    assert [(name, kind) for name, kind, _ in slots] == [
        ("audio", "value"), ("audioUI", "unsaved"), ("upload", "upload")]
    assert slots[0][2]["choices"] == FILES
    # a SaveAudio's audioUI is the last widget: the saved list simply ends before it
    assert [name for name, _, _ in widget_slots(CORE_NODE_DEFS["SaveAudio"])] == [
        "filename_prefix"]


@pytest.mark.parametrize("upload", [None, ""])
def test_load_audio_accepts_what_the_page_saves(upload, node_defs):
    data = copy.deepcopy(_load(EXAMPLES_DIR / "sync3_video_audio.json"))
    _node(data, "LoadAudio")["widgets_values"] = ["example.wav", None, upload]
    assert check_workflow(data, node_defs) == []


@pytest.mark.parametrize("values, needle", [
    (["example.wav"], "widgets_values has 1 values"),
    (["example.wav", "", None], "widget 'audioUI'"),
    (["example.wav", None, "image"], "audio upload button"),
    (["", None, None], "not a file name"),
])
def test_load_audio_rejects_what_the_page_never_saves(values, needle, node_defs):
    data = copy.deepcopy(_load(EXAMPLES_DIR / "sync3_video_audio.json"))
    _node(data, "LoadAudio")["widgets_values"] = values
    _only(check_workflow(data, node_defs), needle)


def test_seed_control_follows_frontend_rules():
    info = {"input": {"required": {
        "seed": ("INT", {"default": 0}),
        "noise_seed": ("INT", {"default": 0, "control_after_generate": False}),
        "count": ("INT", {"default": 0, "control_after_generate": True}),
        "value": ("FLOAT", {"default": 0.0}),
        "image": ("IMAGE",),
        "text": ("STRING", {"forceInput": True}),
    }}, "output": []}
    slots = [(name, kind) for name, kind, _ in widget_slots(describe_node_info(info))]
    assert slots == [("seed", "value"), ("seed control_after_generate", "control"),
                     ("noise_seed", "value"), ("count", "value"),
                     ("count control_after_generate", "control"), ("value", "value")]


# --------------------------------------------------------------------------------------------
# The hand-copied core table matches a real ComfyUI (optional: needs COMFYUI_PATH)
# --------------------------------------------------------------------------------------------

# Where each core node lives in ComfyUI; each module is imported on its own, so one missing
# dependency (torchaudio must match torch's exact build) does not hide the others.
CORE_NODE_MODULES = {
    "nodes": ["LoadImage", "SaveImage", "PreviewImage"],
    "comfy_extras.nodes_audio": ["SaveAudio", "PreviewAudio", "LoadAudio"],
    "comfy_extras.nodes_video": ["SaveVideo", "CreateVideo", "GetVideoComponents", "LoadVideo"],
}

_DUMP_CORE_NODES = textwrap.dedent("""
    import asyncio, importlib, json, sys
    sys.path.insert(0, sys.argv[1])
    modules = json.loads(sys.argv[2])
    out = {"nodes": {}, "import_errors": {}}
    try:
        import comfy.cli_args
        comfy.cli_args.args.cpu = True  # never touch a GPU from a test
        from comfy_api.internal import _ComfyNodeInternal
    except Exception as exc:
        out["import_errors"]["comfy_api"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out))
        sys.exit(0)

    def node_info(cls):  # what server.py node_info sends for the class
        if issubclass(cls, _ComfyNodeInternal):
            info = cls.GET_NODE_INFO_V1()
        else:
            types = list(cls.RETURN_TYPES)
            info = {"input": cls.INPUT_TYPES(), "output": types,
                    "output_name": list(getattr(cls, "RETURN_NAMES", None) or types),
                    "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", None)
                                           or [False] * len(types))}
        return {k: info.get(k) for k in ("input", "output", "output_name", "output_is_list")}

    for module_name, node_ids in modules.items():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            out["import_errors"][module_name] = f"{type(exc).__name__}: {exc}"
            continue
        classes = dict(getattr(module, "NODE_CLASS_MAPPINGS", {}))
        if hasattr(module, "comfy_entrypoint"):  # V3 extension
            extension = asyncio.run(module.comfy_entrypoint())
            for cls in asyncio.run(extension.get_node_list()):
                classes[cls.GET_SCHEMA().node_id] = cls
        for node_id in node_ids:
            cls = classes.get(node_id)
            out["nodes"][node_id] = None if cls is None else node_info(cls)
    print(json.dumps(out, default=str))
""")


def test_core_table_matches_real_comfyui():
    root = os.environ.get("COMFYUI_PATH")
    if not root or not (Path(root) / "nodes.py").is_file():
        pytest.skip("set COMFYUI_PATH to a ComfyUI checkout to compare CORE_NODE_DEFS with it")
    assert sorted(n for ids in CORE_NODE_MODULES.values() for n in ids) == sorted(CORE_NODE_INFO)
    # A subprocess: conftest plants a stand-in for ComfyUI's top-level `nodes` module here,
    # and ComfyUI's imports must not mix with the pack's. -B: write nothing into the checkout.
    proc = subprocess.run(
        [sys.executable, "-B", "-c", _DUMP_CORE_NODES, str(Path(root).resolve()),
         json.dumps(CORE_NODE_MODULES)],
        cwd=root, capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"dumping ComfyUI's node definitions failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    mismatches, compared = [], []
    for node_id, info in result["nodes"].items():
        if info is None:
            mismatches.append(f"{node_id}: not found in ComfyUI")
            continue
        real = describe_node_info(info)
        if real != CORE_NODE_DEFS[node_id]:
            mismatches.append(f"{node_id}:\n  ComfyUI: {real}\n  table:   "
                              f"{CORE_NODE_DEFS[node_id]}")
        compared.append(node_id)
    assert mismatches == [], "\n".join(mismatches)
    if result["import_errors"]:
        errors = "; ".join(f"{m}: {e}" for m, e in result["import_errors"].items())
        pytest.skip(f"only partly checked (matching: {compared or 'none'}); ComfyUI at {root} "
                    f"cannot be fully imported here: {errors}")
