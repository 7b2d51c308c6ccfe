"""Differential check: the node pre-flight and the local Runware double give one verdict.

    python bench/spec_differential.py [--count 5000] [--seed N] [--show 10]

Tasks for both models are generated from their OpenAPI files
(``components.schemas.RequestBody.items``) with hypothesis + hypothesis-jsonschema. Half
are nudged towards validity ("repaired"), and most get one mutation: a required field
dropped, a number out of range, a wrong type or odd JSON shape, an edge value, a media
edge (segment end, speaker point, frame number, boxes), a URL scheme, a media reference of
the wrong kind. Media references are bound to real files uploaded to the double (made
the way the nodes make them). Then

* the **pre-flight** judges the task: ``spec.validate_task`` + ``spec.check_media`` with
  the facts the node has (the node's own probe of the video, the audio's length), and
* the **double** judges it: one HTTP POST, accepted when it answers 200 with the task.

The script prints the agreement matrix (pre-flight x double) per case family. Any
disagreement, or a double answer of 5xx / no answer ("crash"), is listed with the task.
``tests/test_spec_differential.py`` runs a few hundred derandomized cases in CI, plus a
sweep that puts every odd JSON shape into every field of both models.

Run from the repository root with the test extras installed.
"""

from __future__ import annotations

import argparse
import base64
import copy
import importlib.util
import json
import math
import random
import sys
import tempfile
import time
import types
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the pack's one loader, offline_runware.py (removed below)
import offline_runware  # noqa: E402

sys.path.remove(str(REPO))
PACK_NAME = offline_runware.comfyui_module_name(REPO)
sys.path.insert(0, str(REPO / "tests"))  # media_factory: the clip maker the tests use too


def pack_module(dotted: str) -> types.ModuleType:
    """A module of the pack, loaded by path the way ComfyUI loads it (the tests' loader)."""
    offline_runware.load_pack(PACK_NAME, comfyui_nodes_stand_in=True)
    return importlib.import_module(f"{PACK_NAME}.{dotted}")


spec = pack_module("nodes.runware.spec")
tasks_mod = pack_module("nodes.runware.tasks")
node_decode = pack_module("nodes.runware.decode")
node_encode = pack_module("nodes.runware.encode")
double_mod = pack_module("nodes.runware.double")

KEY = "differential-test-key-0123456789"
NAN, INF = float("nan"), float("inf")
LONE = "a\ud83d b"  # half of an emoji
# Odd JSON shapes (and values JSON cannot carry) for every field.
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 1e308, 10**30, -(10**30), "", " ", "x", "0",
    [], [1], ["a", "b"], [[[]]], {}, {"a": 1}, {"taskType": "videoInference"},
    NAN, INF, -INF, LONE, "\u0000", "\u202e\u00e9\U0001F600",
]
BAD_URLS = [
    "ftp://files.example.com/a.mp4", "mailto:someone@example.com", "javascript:alert(1)",
    "file:///etc/passwd", "http://", "https://exa mple.com/x", "urn:isbn:123",
    "data:text/plain;base64,AAAA", "HTTPS://EXAMPLE.COM/OK.mp4", "http://[::1]:99999/x",
    "https://example.com/ok.wav", "ws://example.com/socket",
]


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    accept: bool
    params: tuple[str, ...] = ()
    status: int | None = None  # HTTP status for the double; None: no answer
    detail: str = ""

    @property
    def crash(self) -> bool:
        return self.status is None or self.status >= 500

    @property
    def label(self) -> str:
        if self.crash:
            return "crash"
        return "accept" if self.accept else "refuse"


@dataclass
class Case:
    family: str  # "valid", "repaired", "mutation:<kind>", "odd:<path>", ...
    model: str
    task: Any
    note: str = ""


@dataclass
class Outcome:
    case: Case
    preflight: Verdict
    double: Verdict

    @property
    def agree(self) -> bool:
        return not self.double.crash and self.preflight.accept == self.double.accept


# --------------------------------------------------------------------------- media


@dataclass
class Medium:
    ref: str  # a UUID of an upload to the double, or inline data
    facts: Any  # spec.MediaFacts as the pre-flight knows them


@dataclass
class MediaSet:
    """Real files uploaded to the double, and what the pre-flight knows of each."""

    videos: list[Medium] = field(default_factory=list)
    audios: list[Medium] = field(default_factory=list)
    images: list[Medium] = field(default_factory=list)
    inline: dict[str, Any] = field(default_factory=dict)  # inline string -> facts

    def lookup(self, ref: str) -> Any:
        for medium in (*self.videos, *self.audios, *self.images):
            if medium.ref == ref:
                return medium.facts
        if ref in self.inline:
            return self.inline[ref]
        if spec.is_inline_image(ref):
            return inline_facts(ref)
        return None  # a remote URL: unknown until the service downloads it

    def kind_of(self, ref: str) -> str | None:
        facts = self.lookup(ref)
        return None if facts is None else facts.kind


def inline_facts(text: str) -> Any:
    """What the pre-flight knows of inline image data it holds: decode and open it.

    Written independently of the double's decoder (standard base64 + Pillow), so the two
    readings of inline data are compared too.
    """
    import binascii
    import io

    from PIL import Image

    body = text.split(",", 1)[1] if text[:5].lower() == "data:" else text
    try:
        data = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            width, height = img.size
    except (binascii.Error, ValueError, OSError, SyntaxError) as exc:
        return spec.MediaFacts(kind="unreadable", problem=f"not a decodable image ({exc})")
    return spec.MediaFacts(kind="image", width=width, height=height)


def _tone(seconds: float, rate: int, channels: int = 1) -> dict:
    import torch

    t = torch.arange(round(seconds * rate)) / rate
    wave = (0.2 * torch.sin(2 * torch.pi * 330 * t)).repeat(1, channels, 1)
    return {"waveform": wave, "sample_rate": rate}


def write_webm(path: Path, *, width: int, height: int, fps: int, frames: int) -> Path:
    """VP9 + Opus WEBM: its headers hold no frame count (the node counts packets)."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
        rng = np.random.default_rng(1)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 255, (height, width, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_media(double: Any, work: Path) -> MediaSet:
    """Upload two videos, two audio tracks and an image, as the nodes would make them."""
    from media_factory import png_bytes, write_mp4

    client = _Client(double)
    out = MediaSet()
    for name, kwargs in (
        ("v48.mp4", dict(width=64, height=48, fps=24, frames=48)),  # 2.0 s
        ("v25.mp4", dict(width=96, height=64, fps=12, frames=25)),  # 2.0833 s: off the grid
        ("v50.webm", dict(width=80, height=48, fps=24, frames=50)),  # no count in headers
    ):
        if name.endswith(".webm"):
            path = write_webm(work / name, **kwargs)
        else:
            path = write_mp4(work / name, **kwargs)
        info = node_decode.probe_video(path)  # the node's own reading of the file
        facts = tasks_mod.video_media_facts(tasks_mod.VideoFacts(
            width=info.width, height=info.height, fps=info.fps,
            frame_count=info.frame_count, duration=info.duration))
        facts = spec.MediaFacts(**{**facts.__dict__, "has_audio": info.has_audio})
        mime = "video/webm" if name.endswith(".webm") else "video/mp4"
        out.videos.append(Medium(client.upload(mime, path.read_bytes()), facts))
    for name, seconds, rate in (("a1.flac", 1.0, 16000), ("a13.flac", 1.337, 22050)):
        audio = _tone(seconds, rate)
        path = node_encode.audio_to_file(audio, work / name)  # what the node uploads
        duration = audio["waveform"].shape[-1] / audio["sample_rate"]
        out.audios.append(Medium(client.upload("audio/flac", path.read_bytes()),
                                 spec.MediaFacts(kind="audio", duration=duration)))
    png = png_bytes(40, 30)
    out.images.append(Medium(client.upload_image(png), spec.MediaFacts(
        kind="image", width=40, height=30)))
    out.inline["png"] = png  # bytes to build inline forms from
    return out


class _Client:
    """Plain JSON over HTTP (keep-alive) to the double; NaN and surrogates pass through."""

    def __init__(self, double: Any) -> None:
        import requests

        self.url = double.base_url
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {KEY}",
                                     "Content-Type": "application/json"})

    def post(self, body: Any) -> tuple[int | None, Any]:
        import requests

        try:
            data = json.dumps(body, allow_nan=True).encode("ascii")
        except (ValueError, RecursionError) as exc:
            return None, f"not encodable: {exc}"
        try:
            r = self.session.post(self.url, data=data, timeout=60)
        except requests.RequestException as exc:
            return None, f"no answer: {exc}"
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text[:200]

    def upload(self, mime: str, data: bytes) -> str:
        status, body = self.post([{
            "taskType": "mediaStorage", "taskUUID": str(uuid.uuid4()), "operation": "upload",
            "media": f"data:{mime};base64,{base64.b64encode(data).decode()}"}])
        assert status == 200, body
        return body["data"][0]["mediaUUID"]

    def upload_image(self, png: bytes) -> str:
        status, body = self.post([{
            "taskType": "imageUpload", "taskUUID": str(uuid.uuid4()),
            "image": f"data:image/png;base64,{base64.b64encode(png).decode()}"}])
        assert status == 200, body
        return body["data"][0]["imageUUID"]


# --------------------------------------------------------------------------- the harness


class Harness:
    """A running double with uploaded media, and the two judges."""

    def __init__(self, work: Path) -> None:
        self.double = double_mod.RunwareDouble(api_key=KEY, job_seconds=3600.0,
                                               storage_dir=work / "double")
        self.double.start()
        self.client = _Client(self.double)
        self.media = make_media(self.double, work)
        png = self.media.inline.pop("png")
        self.png_b64 = base64.b64encode(png).decode()
        self.media.inline[self.png_b64] = self.media.images[0].facts
        self.media.inline["data:image/png;base64," + self.png_b64] = self.media.images[0].facts
        garbage = base64.b64encode(b"this is not an image at all").decode()
        unreadable = spec.MediaFacts(kind="unreadable", problem="not a decodable image")
        self.garbage_inline = [garbage, "data:image/png;base64," + garbage]
        for text in self.garbage_inline:
            self.media.inline[text] = unreadable

    def close(self) -> None:
        self.double.stop()

    # -- judges

    def preflight(self, task: Any) -> Verdict:
        violations = spec.validate_task(task)
        if not violations:
            violations = spec.check_media(task, self.media.lookup)
        return Verdict(not violations, tuple(sorted({v.parameter for v in violations})))

    def ask_double(self, task: Any) -> Verdict:
        status, body = self.client.post([task])
        if status is None:
            return Verdict(False, (), None, str(body))
        if not isinstance(body, dict):
            return Verdict(False, (), status, f"not JSON: {body!r:.100}")
        errors = body.get("errors") or []
        data = body.get("data") or []
        params = tuple(sorted({str(e.get("parameter") or "") for e in errors
                               if isinstance(e, dict)}))
        accept = status == 200 and bool(data) and not errors
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors[:3]
                           if isinstance(e, dict))
        return Verdict(accept, params, status, detail)

    def judge(self, case: Case) -> Outcome:
        return Outcome(case, self.preflight(case.task), self.ask_double(case.task))

    # -- binding generated tasks to real media

    def bind(self, task: Any, model: str, rng: random.Random) -> Any:
        """Fresh taskUUID; every media reference -> an upload (or inline data) it can use."""
        if not isinstance(task, dict):
            return task
        task = copy.deepcopy(task)
        if isinstance(task.get("taskUUID"), str) and spec.is_uuid(task["taskUUID"]):
            task["taskUUID"] = str(uuid.uuid4())  # the double refuses a reused one
        for where, ref in spec.media_refs(task):
            if not isinstance(ref, str):
                continue
            new = self._bound_ref(where, ref, model, rng)
            if new is not None:
                _set(task, where, new)
        return task

    def _bound_ref(self, where: str, ref: str, model: str, rng: random.Random) -> str | None:
        if spec.is_uuid(ref):
            if where == "inputs.image":
                return self.media.images[0].ref
            if where == "inputs.video":
                return rng.choice(self.media.videos).ref
            return rng.choice(self.media.audios).ref
        if model == spec.OVI_MODEL and where == "inputs.image" and spec.is_inline_image(ref):
            if ref[:5].lower() == "data:":
                return "data:image/png;base64," + self.png_b64
            return self.png_b64
        return None  # URLs stay: remote ones are answered synthetically, others refused

    def video_of(self, task: dict) -> Any:
        ref = _get(task, "inputs.video")
        return self.media.lookup(ref) if isinstance(ref, str) else None


# --------------------------------------------------------------------------- paths


def _parts(where: str) -> list[str | int]:
    import re

    return [int(p[1:-1]) if p.startswith("[") else p
            for p in re.findall(r"[^.\[\]]+|\[\d+\]", where)]


def _get(task: Any, where: str) -> Any:
    node = task
    for part in _parts(where):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return None
        elif not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(task: Any, where: str, value: Any) -> None:
    parts = _parts(where)
    node = task
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def _delete(task: Any, where: str) -> None:
    parts = _parts(where)
    node = task
    for part in parts[:-1]:
        node = node[part]
    del node[parts[-1]]


def leaf_paths(value: Any, prefix: str = "") -> list[str]:
    """Every path in a JSON value (objects, their members, array items), parents first."""
    out: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(path)
            out += leaf_paths(child, path)
    elif isinstance(value, list):
        for i, child in enumerate(value[:2]):
            path = f"{prefix}[{i}]"
            out.append(path)
            out += leaf_paths(child, path)
    return out


def schema_numbers(model: str) -> dict[str, dict[str, Any]]:
    """Dotted path (array items as [0]) -> the numeric sub-schema, for every number field."""
    out: dict[str, dict[str, Any]] = {}

    def walk(schema: Any, path: str) -> None:
        if not isinstance(schema, dict):
            return
        if schema.get("type") in ("integer", "number"):
            out[path] = schema
        for name, child in (schema.get("properties") or {}).items():
            walk(child, f"{path}.{name}" if path else name)
        items = schema.get("items")
        if isinstance(items, dict):
            walk(items, f"{path}[0]")

    walk(spec.task_schema(model), "")
    return out


# --------------------------------------------------------------------------- base tasks


def base_tasks(h: Harness) -> dict[str, dict]:
    """Complete valid tasks (every optional field set) for each shape of each model."""
    video48, video25 = h.media.videos[:2]
    audio1, audio13 = h.media.audios
    common = {"taskType": "videoInference", "deliveryMethod": "async", "outputType": "URL",
              "includeCost": True, "numberResults": 2, "outputFormat": "WEBM",
              "outputQuality": 80, "safety": {"checkContent": True, "mode": "fast"},
              "webhookURL": "https://hooks.example.com/runware",
              "uploadEndpoint": "https://bucket.example.com/put?sig=1", "ttl": 600}
    ovi = {**common, "model": spec.OVI_MODEL,
           "positivePrompt": "A fox says <S>hello<E> <AUDCAP>wind<ENDAUDCAP>",
           "inputs": {"image": h.media.images[0].ref}, "fps": 24, "seed": 7, "steps": 20,
           "acceleratorOptions": {"teaCache": True, "teaCacheDistance": 0.57,
                                  "cacheStartStep": 2, "cacheEndStep": 18,
                                  "cacheMaxConsecutiveSteps": 3},
           "advancedFeatures": {"videoCFGScale": 5.5, "audioCFGScale": 4, "slgLayer": 9,
                                "videoNegativePrompt": "blur",
                                "audioNegativePrompt": "hiss"}}
    s3 = {**common, "model": spec.SYNC3_MODEL}
    return {
        "ovi": ovi,
        "ovi_percent": {**ovi, "inputs": {"image": h.png_b64}, "acceleratorOptions": {
            "cacheStartStepPercentage": 10, "cacheEndStepPercentage": 90}},
        "sync3_audio_point": {**s3, "inputs": {"video": video25.ref, "audio": audio1.ref},
                              "settings": {"syncMode": "bounce", "activeSpeakerDetection": {
                                  "autoDetect": False, "coordinates": [95, 63],
                                  "frameNumber": 24}}},
        "sync3_speech_boxes": {**s3, "inputs": {"video": video48.ref},
                               "speech": {"text": "Hello there", "voice": "auto"},
                               "settings": {"syncMode": "remap", "tts": {
                                   "provider": "elevenlabs", "stability": 0.5,
                                   "similarityBoost": 1},
                                   "activeSpeakerDetection": {
                                       "boundingBoxes": [[0, 0, 64, 48]] * 48}}},
        "sync3_segments": {**s3, "inputs": {"video": video25.ref},
                           "settings": {"syncMode": "cut_off", "segments": [
                               {"startTime": 0, "endTime": 1.0, "audio": audio1.ref},
                               {"startTime": 1.0, "endTime": 2.09, "audio": audio13.ref,
                                "audioStartTime": 0.2, "audioEndTime": 1.34}],
                               "activeSpeakerDetection": {"autoDetect": True}}},
        "sync3_remote": {**s3, "inputs": {"video": "https://cdn.example.com/clip.mp4",
                                          "audio": "https://cdn.example.com/voice.wav"}},
    }


def _fresh(task: dict, rng: random.Random) -> dict:
    task = copy.deepcopy(task)
    task["taskUUID"] = str(uuid.uuid4())
    return task


def odd_shape_cases(h: Harness, seed: int = 0) -> Iterator[Case]:
    """Every odd JSON shape in every field of every base task; every field removed."""
    rng = random.Random(seed)
    for name, base in base_tasks(h).items():
        model = base["model"]
        yield Case("base", model, _fresh(base, rng), name)
        paths = ["taskType", "model", *leaf_paths(base)]
        for path in dict.fromkeys(paths):
            for value in ODD_VALUES:
                task = _fresh(base, rng)
                _set(task, path, copy.deepcopy(value))
                yield Case(f"odd:{name}", model, task, f"{path} = {value!r:.40}")
            task = _fresh(base, rng)
            _delete(task, path)
            yield Case(f"drop:{name}", model, task, f"del {path}")
    for value in ODD_VALUES:
        yield Case("odd:task", "", copy.deepcopy(value), f"task = {value!r:.40}")


def edge_cases(h: Harness) -> Iterator[tuple[Case, bool]]:
    """Each boundary decision, on and one step past the edge: (case, expected verdict)."""
    rng = random.Random(0)
    bases = base_tasks(h)
    audio1, audio13 = h.media.audios

    def case(name: str, note: str, edit: Callable[[dict], None], ok: bool
             ) -> tuple[Case, bool]:
        task = _fresh(bases[name], rng)
        edit(task)
        return Case(f"edge:{name}", task["model"] if isinstance(task, dict) else "",
                    task, note), ok

    for medium in h.media.videos:
        facts = medium.facts
        w, hh, n = facts.width, facts.height, facts.frame_count
        limit = spec.time_limit(facts.length)
        ref = medium.ref

        def video(t: dict, ref: str = ref) -> None:
            t["inputs"]["video"] = ref

        def segs(*items: tuple, v: Callable[[dict], None] = video) -> Callable[[dict], None]:
            def edit(t: dict) -> None:
                v(t)
                t["settings"]["segments"] = [
                    {"startTime": a, "endTime": b, "audio": audio1.ref} for a, b in items]
            return edit

        def asd(value: dict, v: Callable[[dict], None] = video) -> Callable[[dict], None]:
            def edit(t: dict) -> None:
                v(t)
                t["settings"]["activeSpeakerDetection"] = value
            return edit

        tag = f"{w}x{hh} {n} frames {facts.length:.4f} s"
        yield case("sync3_segments", f"{tag}: end = {limit}", segs((0, limit)), True)
        yield case("sync3_segments", f"{tag}: end = {limit} + 0.01",
                   segs((0, round(limit + 0.01, 2))), False)
        yield case("sync3_segments", "touching segments", segs((0, 1.0), (1.0, limit)), True)
        yield case("sync3_segments", "overlap by 0.01", segs((0, 1.0), (0.99, limit)), False)
        yield case("sync3_audio_point", f"{tag}: point ({w - 1}, {hh - 1})",
                   asd({"coordinates": [w - 1, hh - 1], "frameNumber": n - 1}), True)
        yield case("sync3_audio_point", f"{tag}: point ({w - 0.5}, 0)",
                   asd({"coordinates": [w - 0.5, 0], "frameNumber": 0}), True)
        yield case("sync3_audio_point", f"{tag}: point x = width",
                   asd({"coordinates": [w, 0], "frameNumber": 0}), False)
        yield case("sync3_audio_point", f"{tag}: point y = height",
                   asd({"coordinates": [0, hh], "frameNumber": 0}), False)
        yield case("sync3_audio_point", "point x = -1",
                   asd({"coordinates": [-1, 0], "frameNumber": 0}), False)
        yield case("sync3_audio_point", f"{tag}: frameNumber = frames",
                   asd({"coordinates": [0, 0], "frameNumber": n}), False)
        yield case("sync3_speech_boxes", f"{tag}: {n} boxes to the frame's edge",
                   asd({"boundingBoxes": [[0, 0, w, hh]] * n}), True)
        yield case("sync3_speech_boxes", f"{tag}: {n - 1} boxes",
                   asd({"boundingBoxes": [[0, 0, w, hh]] * (n - 1)}), False)
        yield case("sync3_speech_boxes", f"{tag}: {n + 1} boxes",
                   asd({"boundingBoxes": [[0, 0, w, hh]] * (n + 1)}), False)
        yield case("sync3_speech_boxes", f"{tag}: box x2 = width + 1",
                   asd({"boundingBoxes": [[0, 0, w + 1, hh]] * n}), False)
        yield case("sync3_speech_boxes", f"{tag}: box y2 = height + 0.5",
                   asd({"boundingBoxes": [[0, 0, w, hh + 0.5]] * n}), False)
        yield case("sync3_speech_boxes", "empty box (x1 == x2)",
                   asd({"boundingBoxes": [[5, 0, 5, hh]] * n}), False)

    alimit = spec.time_limit(audio13.facts.length)

    def audio_range(end: float) -> Callable[[dict], None]:
        def edit(t: dict) -> None:
            t["settings"]["segments"][1].update(audioStartTime=0.1, audioEndTime=end)
        return edit

    yield case("sync3_segments", f"audioEndTime = {alimit}", audio_range(alimit), True)
    yield case("sync3_segments", f"audioEndTime = {alimit} + 0.01",
               audio_range(round(alimit + 0.01, 2)), False)

    def remote(t: dict) -> None:
        t["inputs"]["video"] = "https://cdn.example.com/long.mp4"
        t["settings"]["segments"][1]["endTime"] = 100.0
        t["settings"]["activeSpeakerDetection"] = {"coordinates": [5000, 10],
                                                   "frameNumber": 9000}
    yield case("sync3_segments", "remote video: its length is unknown", remote, True)

    def huge(t: dict) -> None:
        remote(t)
        t["settings"]["segments"][1]["endTime"] = 1e308
        t["settings"]["activeSpeakerDetection"] = {"coordinates": [1e308, 0],
                                                   "frameNumber": 10**30}
    yield case("sync3_segments", "remote video, absurd but valid numbers", huge, True)

    def steps(n: int, start: int, end: int | None) -> Callable[[dict], None]:
        def edit(t: dict) -> None:
            t["steps"] = n
            t["acceleratorOptions"] = {"cacheStartStep": start}
            if end is not None:
                t["acceleratorOptions"]["cacheEndStep"] = end
        return edit

    yield case("ovi", "cacheStartStep = steps - 1, no end", steps(20, 19, None), True)
    yield case("ovi", "cacheStartStep = steps, no end", steps(20, 20, None), False)
    yield case("ovi", "cacheStartStep = 30 > default steps, no end",
               lambda t: (t.pop("steps"), t.update(acceleratorOptions={"cacheStartStep": 30})),
               False)
    yield case("ovi", "cacheEndStep = steps", steps(20, 0, 20), True)
    yield case("ovi", "cacheEndStep = steps + 1", steps(20, 0, 21), False)
    for prompt, ok in (("", False), (" \n\t", False), ("x", True)):
        yield case("ovi", f"positivePrompt {prompt!r}",
                   lambda t, p=prompt: t.update(positivePrompt=p), ok)
    for name in ("webhookURL", "uploadEndpoint"):
        for url, ok in (("https://h.example.com/x", True), ("HTTP://H.EXAMPLE.COM/x", True),
                        ("ftp://h.example.com/x", False), ("mailto:a@example.com", False)):
            yield case("ovi", f"{name} {url}", lambda t, n=name, u=url: t.update({n: u}), ok)
    yield case("sync3_remote", "remote video and audio", lambda t: None, True)
    yield case("sync3_remote", "ftp audio",
               lambda t: t["inputs"].update(audio="ftp://x.example.com/a.wav"), False)
    yield case("ovi", "https image", lambda t: t["inputs"].update(
        image="https://img.example.com/a.png"), True)
    yield case("sync3_speech_boxes", "blank speech text",
               lambda t: t["speech"].update(text="  "), False)
    for value in ([spec.OVI_MODEL], {"id": spec.OVI_MODEL}, 190, None, True):
        yield case("ovi", f"model = {value!r}", lambda t, v=value: t.update(model=v), False)
        yield case("ovi", f"taskType = {value!r}", lambda t, v=value: t.update(taskType=v),
                   False)
    yield case("ovi", "steps = 20.0 (an integer to JSON Schema)",
               lambda t: t.update(steps=20.0), True)
    yield case("ovi", "videoCFGScale = NaN",
               lambda t: t["advancedFeatures"].update(videoCFGScale=NAN), False)
    yield case("ovi", "prompt with an unpaired surrogate",
               lambda t: t.update(positivePrompt=LONE), False)


# --------------------------------------------------------------------------- repairs


def repair(task: Any, model: str, h: Harness, rng: random.Random) -> Any:
    """Nudge a schema-generated task towards what the pre-flight accepts (in place)."""
    if not isinstance(task, dict):
        return task
    if isinstance(task.get("positivePrompt"), str) and not task["positivePrompt"].strip():
        task["positivePrompt"] = "A fox says <S>hi<E>"
    for name in ("webhookURL", "uploadEndpoint"):
        if name in task:
            task[name] = "https://hooks.example.com/" + name
    if model == spec.OVI_MODEL:
        if isinstance(task.get("fps"), int) and task["fps"] < 1:
            task["fps"] = 24
        acc = task.get("acceleratorOptions")
        if isinstance(acc, dict):
            steps = task.get("steps", 30)
            acc.pop("cacheStartStep", None)
            acc.pop("cacheEndStep", None)
            if "cacheStartStepPercentage" in acc and "cacheEndStepPercentage" in acc:
                acc["cacheStartStepPercentage"] = min(acc["cacheStartStepPercentage"],
                                                      acc["cacheEndStepPercentage"] - 1)
            if isinstance(steps, int) and steps > 1 and rng.random() < 0.5:
                acc["cacheStartStep"] = rng.randrange(0, steps - 1)
                acc["cacheEndStep"] = rng.randrange(acc["cacheStartStep"] + 1, steps + 1)
            if "teaCacheDistance" in acc:
                acc["teaCacheDistance"] = round(rng.random(), 2)
        image = _get(task, "inputs.image")
        if isinstance(image, str) and not (spec.is_uuid(image) or image == h.png_b64
                                           or image.endswith(h.png_b64)):
            _set(task, "inputs.image", "https://img.example.com/start.png")
        return task
    for where, ref in spec.media_refs(task):
        if isinstance(ref, str) and not spec.is_uuid(ref):
            _set(task, where, "https://media.example.com/" + where.replace(".", "_"))
    speech = task.get("speech")
    if isinstance(speech, dict) and isinstance(speech.get("text"), str):
        if not speech["text"].strip():
            speech["text"] = "Hello"
    video = h.video_of(task)
    settings = task.get("settings")
    if not isinstance(settings, dict):
        return task
    segments = settings.get("segments")
    clip = video.length if video is not None else 4.0
    if isinstance(segments, list) and segments:
        slot = math.floor(spec.time_limit(clip) * 100 / len(segments)) / 100
        for i, seg in enumerate(segments):
            seg["startTime"] = round(i * slot, 2)
            seg["endTime"] = round((i + 1) * slot, 2)
            if "audioStartTime" in seg or "audioEndTime" in seg:
                facts = h.media.lookup(seg.get("audio"))
                length = facts.length if facts is not None and facts.length else 1.0
                seg["audioStartTime"] = 0.0
                seg["audioEndTime"] = round(min(spec.time_limit(length), 1.0), 2)
    asd = settings.get("activeSpeakerDetection")
    if isinstance(asd, dict):
        width, height = (video.width, video.height) if video is not None else (64, 48)
        frames = video.frame_count if video is not None else 48
        if "coordinates" in asd:
            asd["coordinates"] = [rng.randrange(width), rng.randrange(height)]
            asd["frameNumber"] = rng.randrange(frames)
        if "boundingBoxes" in asd:
            asd["boundingBoxes"] = [[1, 2, width, height]] * frames
    tts = settings.get("tts")
    if isinstance(tts, dict):
        for key in ("stability", "similarityBoost"):
            if key in tts:
                tts[key] = round(rng.random(), 2)
    return task


# --------------------------------------------------------------------------- mutations


def _numeric_edges(schema: dict) -> list[Any]:
    values: list[Any] = []
    step = schema.get("multipleOf", 1 if schema.get("type") == "integer" else 0.01)
    for key, delta in (("minimum", -step), ("maximum", step)):
        if key in schema:
            bound = schema[key]
            values += [bound, bound + delta]
    if "exclusiveMinimum" in schema:
        values += [schema["exclusiveMinimum"], schema["exclusiveMinimum"] + step]
    if schema.get("type") == "integer":
        values += [1.0, 30.0, 2.5, "3", True]
    if "multipleOf" in schema:
        values += [0.005, 0.575, 1.57]
    return values + [NAN, INF, -1, 0]


def mutate(task: Any, model: str, h: Harness, rng: random.Random) -> tuple[str, Any]:
    """One mutation of ``task``: (kind, mutated task)."""
    if not isinstance(task, dict):
        return "none", task
    task = copy.deepcopy(task)
    kinds = ["drop", "range", "odd", "edge", "unknown", "url", "prose", "uuid"]
    if model == spec.SYNC3_MODEL:
        kinds += ["media_edge", "media_edge", "media_kind", "remote", "overlap"]
    else:
        kinds += ["media_kind", "remote"]
    kind = rng.choice(kinds)
    paths = leaf_paths(task)
    if kind == "drop":
        required = [p for p in paths if p.split(".")[-1] in (
            "taskType", "taskUUID", "model", "positivePrompt", "inputs", "image", "video",
            "text", "voice", "startTime", "endTime", "audio", "frameNumber", "coordinates")]
        if required:
            _delete(task, rng.choice(required))
    elif kind == "range":
        numbers = schema_numbers(model)
        path = rng.choice(sorted(numbers))
        if "[0]" in path and _get(task, path.split("[0]")[0]) in (None, []):
            path = path.split("[0]")[0] if "[0]" in path else path
        value = rng.choice(_numeric_edges(numbers.get(path, {"type": "number"})))
        _put(task, path, value)
    elif kind == "odd":
        path = rng.choice(["taskType", "model", *paths])
        _set(task, path, copy.deepcopy(rng.choice(ODD_VALUES)))
    elif kind == "edge":
        path = rng.choice(["positivePrompt", "speech.text", "speech.voice",
                                     "advancedFeatures.videoNegativePrompt",
                                     "settings.tts.provider", *paths])
        value = rng.choice(["", " ", "\t\n", "x" * 5000, "x" * 5001, LONE,
                                      "\u00e9\u4e2d\U0001F600", 0, 0.0, -0.0, 1e-9])
        _put(task, path, value)
    elif kind == "unknown":
        where = rng.choice(["", *[p for p in paths if isinstance(_get(task, p), dict)]])
        target = _get(task, where) if where else task
        target[rng.choice(["negativePrompt", "extra", "Model", "\ud800x"])] = 1
    elif kind == "url":
        path = rng.choice(["webhookURL", "uploadEndpoint",
                                     *[w for w, _ in spec.media_refs(task)]])
        _put(task, path, rng.choice(BAD_URLS))
    elif kind == "prose":
        choice = rng.choice(["blank_prompt", "cache_start", "cache_end",
                                       "blank_speech", "fps0"])
        if choice == "blank_prompt":
            task["positivePrompt"] = rng.choice(["", "   ", "\n\t"])
        elif choice == "blank_speech":
            task["speech"] = {"text": rng.choice([" ", "\n", "ok"]),
                              "voice": "auto"}
        elif choice == "fps0":
            task["fps"] = rng.choice([0, 1, -3])
        else:
            steps = rng.choice([1, 20, 30, 100])
            task["steps"] = steps
            acc = {"cacheStartStep": rng.choice([0, steps - 1, steps, steps + 1])}
            if choice == "cache_end":
                acc["cacheEndStep"] = rng.choice([steps - 1, steps, steps + 1])
            task["acceleratorOptions"] = acc
    elif kind == "uuid":
        task["taskUUID"] = rng.choice([
            "not-a-uuid", str(uuid.uuid4()).upper(), uuid.uuid4().hex,
            "{" + str(uuid.uuid4()) + "}", "urn:uuid:" + str(uuid.uuid4()), 42, None])
    elif kind == "media_edge":
        _media_edge(task, h, rng)
    elif kind == "media_kind":
        wrong = rng.choice(["video", "audio", "image", "garbage"])
        pick = {"video": h.media.videos[1].ref, "audio": h.media.audios[0].ref,
                "image": h.media.images[0].ref}
        refs = [w for w, _ in spec.media_refs(task)]
        where = rng.choice(refs or ["inputs.image" if model == spec.OVI_MODEL
                                              else "inputs.video"])
        value = rng.choice(h.garbage_inline) if wrong == "garbage" else pick[wrong]
        _put(task, where, value)
    elif kind == "remote":
        for where, _ in spec.media_refs(task):
            _set(task, where, f"https://remote.example.com/{where}.bin")
    elif kind == "overlap":
        audio = h.media.audios[0].ref
        a, b = rng.choice([(0.5, 1.0), (1.0, 1.5), (0.99, 1.5), (0.0, 0.5)])
        settings = task.setdefault("settings", {})
        if isinstance(settings, dict):
            settings["segments"] = [{"startTime": 0.0, "endTime": 1.0, "audio": audio},
                                    {"startTime": a, "endTime": b, "audio": audio}]
            inputs = task.get("inputs")
            if isinstance(inputs, dict):
                inputs.pop("audio", None)
            task.pop("speech", None)
            settings.pop("tts", None)
    return kind, task


def _put(task: dict, path: str, value: Any) -> None:
    """Set ``path``, creating missing objects on the way (arrays are left alone)."""
    parts = _parts(path)
    node: Any = task
    for part in parts[:-1]:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return
            node = node[part]
            continue
        if not isinstance(node, dict):
            return
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if isinstance(node, list) and last < len(node):
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value


def _media_edge(task: dict, h: Harness, rng: random.Random) -> None:
    """Put a sync-3 task right on (or one step past) a media boundary."""
    video = h.video_of(task)
    if video is None:
        video = rng.choice(h.media.videos).facts
        _put(task, "inputs.video", next(m.ref for m in h.media.videos if m.facts is video))
    limit = spec.time_limit(video.length)
    past = (rng.random() < 0.5)
    edge = rng.choice(["segment_end", "audio_end", "x", "y", "frame", "boxes",
                                 "box_x2", "box_y2"])
    settings = task.setdefault("settings", {})
    if not isinstance(settings, dict):
        return
    if edge in ("segment_end", "audio_end"):
        audio = h.media.audios[rng.randint(0, 1)]
        alimit = spec.time_limit(audio.facts.length)
        seg: dict[str, Any] = {"startTime": 0.5, "endTime": round(limit + (0.01 if past else 0), 2),
                               "audio": audio.ref}
        if edge == "audio_end":
            seg.update(endTime=1.0, audioStartTime=0.1,
                       audioEndTime=round(alimit + (0.01 if past else 0), 2))
        settings["segments"] = [seg]
        if isinstance(task.get("inputs"), dict):
            task["inputs"].pop("audio", None)
        task.pop("speech", None)
        settings.pop("tts", None)
        return
    asd: dict[str, Any]
    w, hh, n = video.width, video.height, video.frame_count
    if edge in ("x", "y", "frame"):
        x, y, frame = w - 1, hh - 1, n - 1
        if past:
            x, y, frame = (w, y, frame) if edge == "x" else (x, hh, frame) if edge == "y" \
                else (x, y, n)
        asd = {"coordinates": [x, y], "frameNumber": frame}
    else:
        count = n + (rng.choice([-1, 1]) if past and edge == "boxes" else 0)
        box = [0, 0, w, hh]
        if past and edge == "box_x2":
            box = [0, 0, w + 1, hh]
        if past and edge == "box_y2":
            box = [0, 0, w, hh + 0.5]
        asd = {"boundingBoxes": [box] * max(count, 1)}
    settings["activeSpeakerDetection"] = asd


# --------------------------------------------------------------------------- generation


def generation_schema(model: str) -> dict[str, Any]:
    """The model's task schema, with arrays capped at 4 items so generation stays fast.

    Capping only narrows what is generated: every instance still satisfies the spec's
    schema (the media edges and mutations cover the long lists).
    """
    schema = spec.task_schema(model)
    if model == spec.SYNC3_MODEL:
        props = schema["properties"]["settings"]["properties"]
        props["segments"]["maxItems"] = 4
        props["activeSpeakerDetection"]["properties"]["boundingBoxes"]["maxItems"] = 4
    return schema


def formats(st: Any) -> dict[str, Any]:
    """Strategies for the schemas' string formats.

    hypothesis-jsonschema's own ``uri`` strategy draws whole domain names (slow, https
    only); this one is quick and also draws the schemes the URL rules are about.
    """
    word = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
    path = st.from_regex(r"[A-Za-z0-9._~-]{0,12}", fullmatch=True)
    web = st.builds(lambda scheme, host, p: f"{scheme}://{host}.example.com/{p}",
                    st.sampled_from(["https", "http", "HTTPS"]), word, path)
    other = st.sampled_from(["ftp://files.example.com/a", "mailto:a@example.com",
                             "urn:isbn:0451450523", "s3://bucket/key", "ws://h.example.com/"])
    return {"uuid": st.uuids().map(str),
            "uri": st.one_of(web, web, web, other)}


def generated_cases(h: Harness, count: int, seed: int | None,
                    derandomize: bool) -> list[Case]:
    """``count`` cases from the schemas: valid, repaired, and single mutations."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis_jsonschema import from_schema

    with warnings.catch_warnings():  # our "uri" strategy replaces the standard one
        warnings.filterwarnings("ignore", message="Overriding standard format")
        strategies = {model: from_schema(generation_schema(model), custom_formats=formats(st))
                      for model in spec.MODELS}
    cases: list[Case] = []

    @settings(max_examples=count, derandomize=derandomize, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(st.data())
    def collect(data: Any) -> None:
        draw = data.draw
        model = draw(st.sampled_from(spec.MODELS))
        raw = draw(strategies[model])
        # Choices beyond the schema come from a Random seeded by hypothesis and the case
        # number: deterministic, and spread evenly (hypothesis favours first options).
        rng = random.Random(f"{draw(st.integers(0, 2**32))}-{len(cases)}")
        task = h.bind(raw, model, rng)
        family = "valid"
        if rng.random() < 0.5:
            task = repair(task, model, h, rng)
            family = "repaired"
        if rng.random() < 0.75:
            kind, task = mutate(task, model, h, rng)
            family = f"mutation:{kind}"
        cases.append(Case(family, model, task))

    if seed is not None:
        from hypothesis import seed as hseed

        collect = hseed(seed)(collect)
    collect()
    return cases[:count]


# --------------------------------------------------------------------------- reporting


def run(h: Harness, cases: list[Case]) -> list[Outcome]:
    return [h.judge(case) for case in cases]


def matrix(outcomes: list[Outcome]) -> str:
    """The agreement matrix, overall and per case family."""
    cells = ("accept/accept", "refuse/refuse", "accept/refuse", "refuse/accept",
             "accept/crash", "refuse/crash")

    def cell(o: Outcome) -> str:
        pf = "accept" if o.preflight.accept else "refuse"
        return f"{pf}/{o.double.label}"

    families: dict[str, Counter] = {}
    total: Counter = Counter()
    for o in outcomes:
        key = o.case.family.split(":")[0] + (
            ":" + o.case.family.split(":")[1] if o.case.family.startswith("mutation") else "")
        families.setdefault(key, Counter())[cell(o)] += 1
        total[cell(o)] += 1
    width = max([len(k) for k in families] + [14])
    lines = ["pre-flight/double  " + "  ".join(f"{c:>13}" for c in cells)]
    for name in sorted(families):
        counts = families[name]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{counts[c]:>13}" for c in cells))
    lines.append(f"{'TOTAL':<{width}}  " + "  ".join(f"{total[c]:>13}" for c in cells))
    agree = total["accept/accept"] + total["refuse/refuse"]
    lines.append(f"{len(outcomes)} cases, {agree} agree, {len(outcomes) - agree} disagree "
                 f"or crash")
    return "\n".join(lines)


def describe(o: Outcome) -> str:
    text = json.dumps(o.case.task, allow_nan=True)
    return (f"[{o.case.family}] {o.case.note}\n  pre-flight: "
            f"{'accept' if o.preflight.accept else 'refuse'} {o.preflight.params}\n  double: "
            f"{o.double.label} HTTP {o.double.status} {o.double.params} {o.double.detail}\n"
            f"  task: {text[:600]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000,
                        help="generated cases (default 2000); the odd-shape sweep is extra")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed")
    parser.add_argument("--show", type=int, default=10, help="disagreements to print")
    parser.add_argument("--no-sweep", action="store_true", help="skip the odd-shape sweep")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="spec-differential-") as tmp:
        h = Harness(Path(tmp))
        try:
            started = time.monotonic()
            cases = generated_cases(h, args.count, args.seed, derandomize=args.seed is None)
            generated = time.monotonic() - started
            if not args.no_sweep:
                cases += list(odd_shape_cases(h))
            started = time.monotonic()
            outcomes = run(h, cases)
            judged = time.monotonic() - started
        finally:
            h.close()
    print(matrix(outcomes))
    print(f"(generation {generated:.1f} s, judging {judged:.1f} s)")
    bad = [o for o in outcomes if not o.agree]
    for o in bad[: args.show]:
        print(describe(o))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
