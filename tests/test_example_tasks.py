"""The task each example workflow builds is accepted by the local double (issue 17).

Each ``example_workflows/*.json`` is run as ComfyUI would run it: widget values mapped to
inputs by workflow_check.widget_slots, links followed, the Load* nodes given real media
(a 5 s clip, 3 s voice tracks, an image), our nodes called for real. Every model node's
request must pass the pre-flight and be accepted by the double.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import PACK, REPO_ROOT, pack_module
from media_factory import write_mp4
from workflow_check import all_node_defs, widget_slots

host = pack_module("nodes.host")
spec = pack_module("nodes.runware.spec")
tasks = pack_module("nodes.runware.tasks")
errors = pack_module("nodes.runware.errors")

EXAMPLES = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
MODEL_NODES = {"RunwareOvi", "RunwareSync3"}
SINKS = {"SaveVideo", "SaveImage", "SaveAudio", "PreviewImage", "PreviewAudio",
         "MarkdownNote", "Note"}


def tone(seconds: float, rate: int = 16000, freq: float = 330.0) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    return {"waveform": (0.2 * torch.sin(2 * torch.pi * freq * t)).reshape(1, 1, -1),
            "sample_rate": rate}


class Graph:
    """Runs a UI-format workflow's nodes in dependency order (number_results = 1)."""

    def __init__(self, data: dict, media_dir: Path) -> None:
        self.nodes = {n["id"]: n for n in data["nodes"]}
        self.links = {lk[0]: lk for lk in data["links"]}
        self.defs = all_node_defs(PACK.NODE_CLASS_MAPPINGS)
        self.outputs: dict[int, tuple] = {}
        self.media_dir = media_dir

    def inputs_of(self, node: dict) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for entry in node.get("inputs") or []:
            if entry.get("link") is None:
                continue
            _, source, slot, _, _, _ = self.links[entry["link"]]
            value = self.run(source)[slot]
            source_cls = PACK.NODE_CLASS_MAPPINGS.get(self.nodes[source]["type"])
            if source_cls is not None and getattr(source_cls, "OUTPUT_IS_LIST", (False,) * 9)[slot]:
                assert len(value) == 1
                value = value[0]
            kwargs[entry["name"]] = value
        slots = widget_slots(self.defs[node["type"]])
        for (name, kind, _), value in zip(slots, node.get("widgets_values") or [],
                                          strict=False):
            if kind == "value":
                kwargs.setdefault(name, value)
        return kwargs

    def run(self, node_id: int) -> tuple:
        if node_id in self.outputs:
            return self.outputs[node_id]
        node = self.nodes[node_id]
        kind = node["type"]
        kwargs = self.inputs_of(node)
        if kind == "LoadImage":
            out: tuple = (torch.rand(1, 48, 64, 3), torch.zeros(1, 48, 64))
        elif kind == "LoadVideo":
            clip = write_mp4(self.media_dir / f"clip{node_id}.mp4", width=96, height=64,
                             fps=12, frames=60)  # 5 s: the segments example needs 5 s
            out = (host.video_from_file(clip),)
        elif kind == "LoadAudio":
            out = (tone(3.0, freq=220.0 + 20 * node_id),)
        elif kind in SINKS:
            out = ()
        else:
            cls = PACK.NODE_CLASS_MAPPINGS[kind]
            kwargs["unique_id"] = str(node_id) if "unique_id" in inspect.signature(
                getattr(cls, cls.FUNCTION)).parameters else None
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
            result = getattr(cls(), cls.FUNCTION)(**kwargs)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
            out = tuple(result["result"] if isinstance(result, dict) else result)
        self.outputs[node_id] = out
        return out

    def run_all(self) -> None:
        for node_id in self.nodes:
            self.run(node_id)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_workflow_task_is_accepted_by_the_double(env, tmp_path, path):
    data = json.loads(path.read_text(encoding="utf-8"))
    models = [n for n in data["nodes"] if n["type"] in MODEL_NODES]
    assert models
    Graph(data, tmp_path).run_all()
    accepted = env.accepted_submissions()
    assert sorted(t["model"] for t in accepted) == sorted(
        spec.OVI_MODEL if n["type"] == "RunwareOvi" else spec.SYNC3_MODEL for n in models)
    for task in accepted:
        assert spec.validate_task(task) == []
    errors_seen = [e for e in env.log if e["status"] not in (200, 206, None)]
    assert errors_seen == [], errors_seen


# -- node-built tasks right at the documented boundaries ---------------------------------

SYNC3 = PACK.NODE_CLASS_MAPPINGS["RunwareSync3"]
SEGMENT = PACK.NODE_CLASS_MAPPINGS["RunwareSync3Segment"]
SPEAKER = PACK.NODE_CLASS_MAPPINGS["RunwareSync3Speaker"]


@pytest.fixture(params=["mp4", "webm"])
def odd_clip(request, tmp_path):
    """(file, frames): 2.0833 s, off the spec's 0.01 s grid; 96x64 pixels. The WEBM's
    headers hold no frame count (an estimate from its duration says 51): the node must
    count its 50 frames, as the double does by decoding."""
    if request.param == "mp4":
        return write_mp4(tmp_path / "odd.mp4", width=96, height=64, fps=12, frames=25), 25
    import sys

    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from spec_differential import write_webm

    return write_webm(tmp_path / "odd.webm", width=96, height=64, fps=24, frames=50), 50


def lipsync(**kwargs: Any) -> tuple:
    kwargs.setdefault("sync_mode", "cut_off")
    return asyncio.run(SYNC3().lipsync(**kwargs))["result"]


def test_node_edges_are_accepted_by_the_double(env, odd_clip):
    """Segment end at the clip's length rounded up to 0.01 s, the last pixel, the last
    frame, one box per frame reaching the frame's edges: the node and the double accept."""
    clip, frames = odd_clip
    segments = SEGMENT().build(tone(1.0), 0.0, 1.0)[0]
    segments = SEGMENT().build(tone(2.0), 1.0, 2.09, 0.5, 1.59, segments=segments)[0]
    point = SPEAKER().build("point", 95.0, 63.0, frames - 1, "")[0]
    lipsync(video=host.video_from_file(clip), segments=segments, speaker=point)
    boxes = SPEAKER().build("boxes", 0, 0, 0, json.dumps([[0, 0, 96, 64]] * frames))[0]
    lipsync(video=host.video_from_file(clip), audio=tone(2.0), speaker=boxes)
    sent = env.accepted_submissions()
    assert len(sent) == 2
    assert sent[0]["settings"]["segments"][1]["endTime"] == 2.09
    assert sent[0]["settings"]["activeSpeakerDetection"] == {"coordinates": [95.0, 63.0],
                                                             "frameNumber": frames - 1}
    assert len(sent[1]["settings"]["activeSpeakerDetection"]["boundingBoxes"]) == frames


@pytest.mark.parametrize(("build", "input_name"), [
    (lambda n: {"segments": SEGMENT().build(tone(3.0), 1.0, 2.10)[0]}, "segments"),
    (lambda n: {"audio": tone(2.0), "speaker": SPEAKER().build("point", 96.0, 0, 0, "")[0]},
     "speaker.x/y"),
    (lambda n: {"audio": tone(2.0), "speaker": SPEAKER().build("point", 0, 64.0, 0, "")[0]},
     "speaker.x/y"),
    (lambda n: {"audio": tone(2.0), "speaker": SPEAKER().build("point", 0, 0, n, "")[0]},
     "speaker.frame_number"),
    (lambda n: {"audio": tone(2.0), "speaker": SPEAKER().build(
        "boxes", 0, 0, 0, json.dumps([[0, 0, 96, 64]] * (n - 1)))[0]}, "speaker.boxes"),
    (lambda n: {"audio": tone(2.0), "speaker": SPEAKER().build(
        "boxes", 0, 0, 0, json.dumps([[0, 0, 96, 64]] * (n + 1)))[0]}, "speaker.boxes"),
    (lambda n: {"audio": tone(2.0), "speaker": SPEAKER().build(
        "boxes", 0, 0, 0, json.dumps([[0, 0, 97, 64]] * n))[0]}, "speaker.boxes"),
], ids=["end 2.10", "x = width", "y = height", "frame = frames", "one box short",
        "one box too many", "x2 > width"])
def test_node_refuses_one_step_past_the_edge(env, odd_clip, build, input_name):
    clip, frames = odd_clip
    with pytest.raises(errors.ValidationError) as info:
        lipsync(video=host.video_from_file(clip), **build(frames))
    assert info.value.parameter == input_name, str(info.value)
    assert env.log == []
