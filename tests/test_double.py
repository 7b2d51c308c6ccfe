"""The local Runware test double, over real HTTP with plain ``requests``."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import requests
import urllib3
from conftest import pack_module
from PIL import Image

double_mod = pack_module("nodes.runware.double")
spec = pack_module("nodes.runware.spec")

KEY = "sk-double-secret-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


# --------------------------------------------------------------------------- media helpers


def make_video(
    path: Path, seconds: float = 2.0, fps: int = 24, size: tuple[int, int] = (64, 48)
) -> Path:
    """A tiny H.264 + AAC (stereo, 44.1 kHz) MP4."""
    width, height = size
    n = round(seconds * fps)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        aus = out.add_stream("aac", rate=44100, layout="stereo")
        for i in range(n):
            rgb = np.full((height, width, 3), (30, 90, 160), np.uint8)
            rgb[:, (i * 2) % width] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        pcm = tone(seconds, 44100, channels=2)
        write_audio_frames(out, aus, pcm, 44100)
    return path


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 330.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.repeat((0.3 * np.sin(2 * np.pi * freq * t))[None, :], channels, 0).astype(np.float32)


def write_audio_frames(out: Any, stream: Any, pcm: np.ndarray, rate: int) -> None:
    layout = "mono" if pcm.shape[0] == 1 else "stereo"
    for s in range(0, pcm.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm[:, s : s + 1024]), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, s, Fraction(1, rate)
        for p in stream.encode(frame):
            out.mux(p)
    for p in stream.encode(None):
        out.mux(p)


def make_audio(path: Path, seconds: float, rate: int = 16000, fmt: str = "wav") -> Path:
    codec = {"wav": "pcm_s16le", "flac": "flac"}[fmt]
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        write_audio_frames(out, stream, tone(seconds, rate), rate)
    return path


def png_bytes(
    colour: tuple[int, int, int] = (220, 20, 20), size: tuple[int, int] = (80, 48)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def decode(data: bytes) -> dict[str, Any]:
    """Frames (as arrays), fps, size and audio facts of a downloaded file."""
    with av.open(io.BytesIO(data)) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(vs)]
    samples, rate, channels = 0, 0, 0
    with av.open(io.BytesIO(data)) as c:
        if c.streams.audio:
            for f in c.decode(c.streams.audio[0]):
                samples += f.samples
                rate, channels = f.sample_rate, len(f.layout.channels)
    return {
        "frames": frames,
        "fps": fps,
        "size": (frames[0].shape[1], frames[0].shape[0]),
        "audio_seconds": samples / rate if rate else 0.0,
        "rate": rate,
        "channels": channels,
    }


def codecs(data: bytes) -> tuple[str, str]:
    with av.open(io.BytesIO(data)) as c:
        return c.streams.video[0].codec_context.name, c.streams.audio[0].codec_context.name


# --------------------------------------------------------------------------- HTTP helpers


def tid() -> str:
    return str(uuid.uuid4())


def post(
    d: Any, tasks: list[dict[str, Any]], headers: dict[str, str] | None = AUTH, **kw: Any
) -> requests.Response:
    return requests.post(d.base_url, json=tasks, headers=headers, timeout=30, **kw)


def ovi(**extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": tid(),
        "model": spec.OVI_MODEL,
        "positivePrompt": "A fox says <S>hi<E> <AUDCAP>wind<ENDAUDCAP>",
        "deliveryMethod": "async",
    }
    task.update(extra)
    return task


def sync3(video: str, **extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": tid(),
        "model": spec.SYNC3_MODEL,
        "deliveryMethod": "async",
        "inputs": {"video": video},
    }
    for key, value in extra.items():
        if key == "audio":
            task["inputs"]["audio"] = value
        else:
            task[key] = value
    return task


def poll(d: Any, task_uuids: list[str], timeout: float = 30.0) -> tuple[dict[str, list], list]:
    """Poll until every task has finished; -> (final items per task, every reply seen)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        r = post(d, [{"taskType": "getResponse", "taskUUID": t} for t in task_uuids])
        body = r.json()
        seen.append(body)
        items: dict[str, list] = {t: [] for t in task_uuids}
        for item in body.get("data", []):
            items[item["taskUUID"]].append(item)
        if body.get("errors"):
            return items, seen
        if all(items[t] and all(i["status"] != "processing" for i in items[t]) for t in items):
            return items, seen
        assert time.monotonic() < deadline, f"jobs did not finish: {body}"
        time.sleep(0.05)


def submit_and_wait(d: Any, task: dict[str, Any]) -> list[dict[str, Any]]:
    r = post(d, [task])
    assert r.status_code == 200, r.text
    assert r.json() == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
    items, _ = poll(d, [task["taskUUID"]])
    return items[task["taskUUID"]]


def upload_media(d: Any, mime: str, data: bytes) -> str:
    r = post(
        d,
        [
            {
                "taskType": "mediaStorage",
                "taskUUID": tid(),
                "operation": "upload",
                "media": data_uri(mime, data),
            }
        ],
    )
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["mediaUUID"]


def error_params(r: requests.Response) -> list[str]:
    return [e["parameter"] for e in r.json()["errors"]]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = double_mod.RunwareDouble(
        api_key=KEY, job_seconds=0.3, storage_dir=tmp_path_factory.mktemp("double")
    )
    with d:
        yield d


@pytest.fixture
def d(shared: Any) -> Iterator[Any]:
    shared.clear_faults()
    shared.reset_log()
    shared.job_seconds = 0.3
    shared.ovi_requires_image = False
    yield shared
    shared.clear_faults()
    shared.job_seconds = 0.3
    shared.ovi_requires_image = False


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "video": make_video(root / "v.mp4").read_bytes(),  # 2 s, 24 fps, 64x48, stereo
        "wav_short": make_audio(root / "short.wav", 1.0).read_bytes(),  # 1 s mono 16 kHz
        "wav_long": make_audio(root / "long.wav", 3.0).read_bytes(),  # 3 s
        "flac": make_audio(root / "a.flac", 1.2, rate=22050, fmt="flac").read_bytes(),
    }


@pytest.fixture(scope="module")
def uploaded(shared: Any, clips: dict[str, bytes]) -> dict[str, str]:
    return {
        "video": upload_media(shared, "video/mp4", clips["video"]),
        "wav_short": upload_media(shared, "audio/wav", clips["wav_short"]),
        "wav_long": upload_media(shared, "audio/wav", clips["wav_long"]),
        "flac": upload_media(shared, "audio/flac", clips["flac"]),
    }


# --------------------------------------------------------------------------- auth and envelope


def test_base_url_and_ping(d: Any) -> None:
    assert d.base_url.startswith("http://127.0.0.1:") and d.base_url.endswith("/v1")
    r = post(d, [{"taskType": "ping", "ping": True}])
    assert r.status_code == 200
    assert r.json() == {"data": [{"taskType": "ping", "pong": True}]}


def test_auth_missing_wrong_header_and_task(d: Any) -> None:
    ping = {"taskType": "ping", "ping": True}
    r = post(d, [ping], headers=None)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "missingApiKey"
    assert "data" not in r.json()
    r = post(d, [ping], headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "invalidApiKey"
    r = post(d, [ping], headers={"Authorization": KEY})  # no "Bearer"
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "invalidApiKey"
    r = post(d, [{"taskType": "authentication", "apiKey": KEY}, ping], headers=None)
    assert r.status_code == 200 and r.json()["data"] == [{"taskType": "ping", "pong": True}]
    r = post(d, [{"taskType": "authentication", "apiKey": "wrong"}, ping], headers=None)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "invalidApiKey"
    r = post(d, [{"taskType": "authentication", "apiKey": ""}, ping], headers=None)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "missingApiKey"
    r = post(d, [ping, {"taskType": "authentication", "apiKey": KEY}], headers=None)
    assert r.status_code == 401


def test_bad_bodies(d: Any) -> None:
    r = requests.post(d.base_url, data=b"{not json", headers=AUTH, timeout=10)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalidJSON"
    r = requests.post(d.base_url, json={"taskType": "ping"}, headers=AUTH, timeout=10)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalidRequestBody"
    r = post(d, [])
    assert r.status_code == 400
    r = post(d, [{"taskType": "teleport", "taskUUID": tid()}])
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalidTaskType"
    r = requests.post(d.base_url.replace("/v1", "/v2"), json=[], headers=AUTH, timeout=10)
    assert r.status_code == 404


ODD_SHAPES = [None, True, 0, -1.5, 10**30, "", [], ["videoInference"], {}, {"a": {"b": []}},
              "\ud800", [[[[]]]]]


def test_bodies_json_cannot_hold(d: Any) -> None:
    """NaN / Infinity literals (Python's json accepts them) and absurd nesting: 400."""
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = b'[{"taskType": "ping", "ping": ' + literal.encode() + b"}]"
        r = requests.post(d.base_url, data=body, headers=AUTH, timeout=10)
        assert r.status_code == 400, literal
        assert r.json()["errors"][0]["code"] == "invalidJSON"
        assert literal in r.json()["errors"][0]["message"]
    deep = b"[" * 100_000 + b"]" * 100_000
    r = requests.post(d.base_url, data=deep, headers=AUTH, timeout=30)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalidJSON"


@pytest.mark.parametrize("value", ODD_SHAPES, ids=repr)
def test_task_type_and_model_of_any_json_shape_get_a_400(d: Any, value: Any) -> None:
    r = post(d, [{"taskType": value, "taskUUID": tid()}])
    assert r.status_code == 400, r.text
    err = r.json()["errors"][0]
    assert err["parameter"] == "taskType"
    assert err["code"] in ("missingParameter", "invalidParameter", "invalidTaskType")
    r = post(d, [ovi(model=value)])
    assert r.status_code == 400, r.text
    err = r.json()["errors"][0]
    assert err["parameter"] == "model"
    assert err["code"] in ("missingParameter", "invalidParameter", "modelNotFound")


@pytest.mark.parametrize("task_type", ["getResponse", "imageUpload", "mediaStorage", "ping",
                                       "authentication"])
def test_other_task_types_never_answer_500(d: Any, task_type: str) -> None:
    fields = {"getResponse": ["taskUUID"], "imageUpload": ["taskUUID", "image"],
              "mediaStorage": ["taskUUID", "operation", "media"], "ping": ["ping"],
              "authentication": ["apiKey", "connectionSessionUUID"]}[task_type]
    for name in fields:
        for value in ODD_SHAPES + ["https://remote.example.com/x.mp4", "ftp://x/y",
                                   "http://127.0.0.1:1/files/nope.mp4"]:
            task: dict[str, Any] = {"taskType": task_type, "taskUUID": tid(),
                                    "operation": "upload", "ping": True}
            task = {k: v for k, v in task.items() if k in fields or k == "taskType"}
            task[name] = value
            r = post(d, [task])
            assert r.status_code < 500, (task, r.text)
            assert r.headers["Content-Type"] == "application/json"


# --------------------------------------------------------------------------- remote media


def test_remote_media_in_tasks_is_answered_synthetically(
    d: Any, uploaded: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="runware_ovi_sync.double")
    d.job_seconds = 0.05
    image = ovi(inputs={"image": "https://images.example.com/start.png"}, fps=8)
    remote = sync3("https://cdn.example.com/talk.mp4",
                   audio="https://cdn.example.com/voice.wav")
    long_video = sync3("https://cdn.example.com/long.mp4", settings={"segments": [
        {"startTime": 0.5, "endTime": 7.5, "audio": "https://cdn.example.com/seg.wav",
         "audioStartTime": 0, "audioEndTime": 2}]})
    mixed = sync3(uploaded["video"], audio="https://cdn.example.com/voice2.wav")
    absurd = sync3("https://cdn.example.com/x.mp4", settings={  # valid, and must not overflow
        "segments": [{"startTime": 1, "endTime": 1e308, "audio": uploaded["wav_short"]}],
        "activeSpeakerDetection": {"coordinates": [1e308, 0], "frameNumber": 10**30}})
    tasks = [image, remote, long_video, mixed, absurd]
    r = post(d, tasks)
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    items, _ = poll(d, [t["taskUUID"] for t in tasks])
    facts = {t["taskUUID"]: decode(requests.get(items[t["taskUUID"]][0]["videoURL"],
                                                timeout=10).content) for t in tasks}
    assert len(facts[image["taskUUID"]]["frames"]) == 40  # Ovi's 5 s at 8 fps
    assert facts[remote["taskUUID"]]["fps"] == 24  # a plausible 5 s clip stands in
    assert len(facts[remote["taskUUID"]]["frames"]) == 120
    assert facts[remote["taskUUID"]]["audio_seconds"] == pytest.approx(5.0, abs=0.1)
    assert len(facts[long_video["taskUUID"]]["frames"]) == 180  # long enough: 7.5 s
    assert len(facts[mixed["taskUUID"]]["frames"]) == 48  # the uploaded video's own
    assert len(facts[absurd["taskUUID"]]["frames"]) == 60 * 24  # capped at 60 s
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "no network" in said and "cdn.example.com/talk.mp4" in said
    assert "synthetic" in said


def test_remote_urls_in_uploads_are_answered_synthetically(d: Any) -> None:
    r = post(d, [{"taskType": "imageUpload", "taskUUID": tid(),
                  "image": "https://images.example.com/a.jpg"}])
    assert r.status_code == 200, r.text
    assert d.uploads[r.json()["data"][0]["imageUUID"]]["kind"] == "image"
    for url, kind in (("https://cdn.example.com/a.wav?sig=1", "audio"),
                      ("https://cdn.example.com/clip", "video")):
        r = post(d, [{"taskType": "mediaStorage", "taskUUID": tid(), "operation": "upload",
                      "media": url}])
        assert r.status_code == 200, r.text
        info = d.uploads[r.json()["data"][0]["mediaUUID"]]
        assert info["kind"] == kind and info["duration"] == pytest.approx(5.0, abs=0.1)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("task", "parameter", "code"),
    [
        (ovi(negativePrompt="x"), "negativePrompt", "unknownParameter"),
        (ovi(steps=101), "steps", "invalidParameter"),
        (
            ovi(acceleratorOptions={"cacheStartStep": 12, "cacheEndStep": 12}),
            "acceleratorOptions.cacheEndStep",
            "invalidParameter",
        ),
        (
            ovi(acceleratorOptions={"cacheStartStep": 2, "cacheStartStepPercentage": 10}),
            "acceleratorOptions.cacheStartStepPercentage",
            "conflictingParameters",
        ),
        (
            ovi(acceleratorOptions={"teaCacheDistance": 0.575}),
            "acceleratorOptions.teaCacheDistance",
            "invalidParameter",
        ),
        (ovi(taskUUID="1234"), "taskUUID", "invalidParameter"),
        (ovi(deliveryMethod="sync"), "deliveryMethod", "invalidParameter"),
        (
            sync3(tid(), audio=tid(), speech={"text": "hi", "voice": "auto"}),
            "speech",
            "conflictingParameters",
        ),
        (sync3(tid(), settings={"tts": {}}, audio=tid()), "speech", "missingParameter"),
        (
            sync3(tid(), audio=tid(), settings={"activeSpeakerDetection": {"coordinates": [1, 2]}}),
            "settings.activeSpeakerDetection.frameNumber",
            "missingParameter",
        ),
        (sync3("not-a-uuid", audio=tid()), "inputs.video", "invalidParameter"),
        (ovi(model="sync:3@0"), "model", "modelNotFound"),
    ],
)
def test_schema_violations_name_the_parameter(
    d: Any, task: dict[str, Any], parameter: str, code: str
) -> None:
    task = dict(task, taskUUID=task["taskUUID"] if task["taskUUID"] == "1234" else tid())
    r = post(d, [task])
    assert r.status_code == 400, r.text
    errors = r.json()["errors"]
    assert [e["parameter"] for e in errors] == [parameter]
    assert errors[0]["code"] == code
    assert errors[0]["taskType"] == "videoInference"
    assert errors[0]["taskUUID"] == task["taskUUID"]
    assert errors[0]["message"]
    assert "data" not in r.json()
    assert d.accepted_submissions() == []


def test_every_violation_is_reported(d: Any) -> None:
    r = post(d, [ovi(steps=0, fps=500, foo=1)])
    assert r.status_code == 400
    assert sorted(error_params(r)) == ["foo", "fps", "steps"]


def test_tea_cache_057_accepted(d: Any) -> None:
    d.job_seconds = 1000
    r = post(d, [ovi(acceleratorOptions={"teaCache": True, "teaCacheDistance": 0.57})])
    assert r.status_code == 200, r.text


def test_text_only_ovi_accepted_or_refused_on_demand(d: Any) -> None:
    d.job_seconds = 1000
    assert post(d, [ovi()]).status_code == 200
    d.ovi_requires_image = True
    r = post(d, [ovi()])
    assert r.status_code == 400 and error_params(r) == ["inputs.image"]
    r = post(d, [ovi(inputs={})])  # an inputs object always needs its image
    assert r.status_code == 400 and error_params(r) == ["inputs.image"]


def test_conflict_task_uuid_and_original_stays_pollable(d: Any) -> None:
    d.job_seconds = 1000
    task = ovi()
    assert post(d, [task]).status_code == 200
    r = post(d, [task])
    assert r.status_code == 400
    err = r.json()["errors"][0]
    assert (err["code"], err["taskUUID"]) == ("conflictTaskUUID", task["taskUUID"])
    r = post(d, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert r.status_code == 200 and r.json()["data"][0]["status"] == "processing"
    # an upload's taskUUID is "used" too
    up = {"taskType": "imageUpload", "taskUUID": tid(), "image": data_uri("image/png", png_bytes())}
    assert post(d, [up]).status_code == 200
    r = post(d, [ovi(taskUUID=up["taskUUID"])])
    assert r.json()["errors"][0]["code"] == "conflictTaskUUID"
    assert len(d.accepted_submissions()) == 1


# --------------------------------------------------------------------------- uploads


def test_image_uploads(d: Any) -> None:
    png = png_bytes()
    r = post(
        d,
        [
            {"taskType": "imageUpload", "taskUUID": tid(), "image": data_uri("image/png", png)},
            {"taskType": "imageUpload", "taskUUID": tid(), "image": base64.b64encode(png).decode()},
        ],
    )
    assert r.status_code == 200, r.text
    items = r.json()["data"]
    assert {"taskType", "taskUUID", "imageUUID", "imageURL"} <= set(items[0])
    assert requests.get(items[0]["imageURL"], timeout=10).content == png
    info = d.uploads[items[1]["imageUUID"]]
    assert (info["kind"], info["width"], info["height"]) == ("image", 80, 48)
    r = post(
        d,
        [
            {
                "taskType": "imageUpload",
                "taskUUID": tid(),
                "image": data_uri("image/png", b"definitely not a png"),
            }
        ],
    )
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalidImage"
    r = post(d, [{"taskType": "imageUpload", "taskUUID": tid(), "image": "%%%"}])
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "invalidImage"


def test_media_uploads_record_facts(d: Any, clips: dict[str, bytes]) -> None:
    video = upload_media(d, "video/mp4", clips["video"])
    info = d.uploads[video]
    assert info["kind"] == "video" and info["frames"] == 48 and info["fps"] == 24
    assert (info["width"], info["height"]) == (64, 48)
    assert info["duration"] == pytest.approx(2.0)
    assert (info["sample_rate"], info["channels"]) == (44100, 2)
    wav = upload_media(d, "audio/wav", clips["wav_short"])
    info = d.uploads[wav]
    assert info["kind"] == "audio" and info["duration"] == pytest.approx(1.0, abs=0.01)
    assert (info["sample_rate"], info["channels"]) == (16000, 1)
    flac = upload_media(d, "audio/flac", clips["flac"])
    assert d.uploads[flac]["sample_rate"] == 22050
    png = upload_media(d, "image/png", png_bytes())
    assert d.uploads[png]["kind"] == "image"
    bare = post(
        d,
        [
            {
                "taskType": "mediaStorage",
                "taskUUID": tid(),
                "operation": "upload",
                "media": base64.b64encode(clips["wav_short"]).decode(),
            }
        ],
    )
    assert bare.status_code == 200
    assert d.uploads[bare.json()["data"][0]["mediaUUID"]]["kind"] == "audio"
    url = bare.json()["data"][0]["mediaURL"]
    assert requests.get(url, timeout=10).content == clips["wav_short"]


def test_media_upload_garbage_and_mixed_batch(d: Any, clips: dict[str, bytes]) -> None:
    garbage = {
        "taskType": "mediaStorage",
        "taskUUID": tid(),
        "operation": "upload",
        "media": data_uri("video/mp4", b"\x00garbage" * 50),
    }
    r = post(d, [garbage])
    assert r.status_code == 400
    err = r.json()["errors"][0]
    assert (err["code"], err["parameter"], err["taskUUID"]) == (
        "invalidMedia",
        "media",
        garbage["taskUUID"],
    )
    good = {
        "taskType": "mediaStorage",
        "taskUUID": tid(),
        "operation": "upload",
        "media": data_uri("audio/wav", clips["wav_short"]),
    }
    r = post(d, [good, dict(garbage, taskUUID=tid())])
    assert r.status_code == 200  # one task succeeded: the other's error rides along
    assert len(r.json()["data"]) == 1 and len(r.json()["errors"]) == 1
    r = post(d, [{"taskType": "mediaStorage", "taskUUID": tid(), "operation": "upload"}])
    assert r.status_code == 400 and error_params(r) == ["media"]
    r = post(
        d,
        [
            {
                "taskType": "mediaStorage",
                "taskUUID": tid(),
                "operation": "copy",
                "media": good["media"],
            }
        ],
    )
    assert r.status_code == 400 and error_params(r) == ["operation"]


def test_media_delete(d: Any, clips: dict[str, bytes]) -> None:
    media_uuid = upload_media(d, "audio/wav", clips["wav_short"])
    url = d.uploads[media_uuid]["url"]
    r = post(
        d,
        [
            {
                "taskType": "mediaStorage",
                "taskUUID": tid(),
                "operation": "delete",
                "media": media_uuid,
            }
        ],
    )
    assert r.status_code == 200 and r.json()["data"][0]["mediaUUID"] == media_uuid
    assert media_uuid not in d.uploads
    assert requests.get(url, timeout=10).status_code == 404
    r = post(
        d,
        [
            {
                "taskType": "mediaStorage",
                "taskUUID": tid(),
                "operation": "delete",
                "media": media_uuid,
            }
        ],
    )
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "mediaNotFound"


# --------------------------------------------------------------------------- Ovi jobs


@pytest.mark.parametrize(
    ("fmt", "fps", "rate", "codec_pair"),
    [
        ("MP4", 24, 44100, ("h264", "aac")),
        ("WEBM", 16, 48000, ("vp9", "opus")),
        ("MOV", 12, 44100, ("h264", "aac")),
    ],
)
def test_ovi_job_in_each_container(
    d: Any, fmt: str, fps: int, rate: int, codec_pair: tuple[str, str]
) -> None:
    task = ovi(outputFormat=fmt, fps=fps, seed=7, includeCost=True)
    items = submit_and_wait(d, task)
    assert len(items) == 1
    item = items[0]
    assert item["status"] == "success" and item["seed"] == 7 and item["cost"] == 0.05
    assert item["videoURL"].startswith(d.origin + "/files/")
    assert item["videoURL"].endswith("." + fmt.lower())
    r = requests.get(item["videoURL"], timeout=10)
    assert r.status_code == 200
    assert r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == len(r.content)
    facts = decode(r.content)
    assert abs(len(facts["frames"]) - 5 * fps) <= 1
    assert facts["fps"] == fps
    assert facts["size"] == (160, 96)
    assert facts["channels"] == 2 and facts["rate"] == rate
    assert facts["audio_seconds"] == pytest.approx(5.0, abs=0.1)
    assert codecs(r.content) == codec_pair
    if fmt == "MOV":
        assert r.content[4:12] == b"ftypqt  "


def test_ovi_seeds_same_equal_different_differ(d: Any) -> None:
    tasks = [ovi(seed=1234, fps=8), ovi(seed=1234, fps=8), ovi(seed=99, fps=8)]
    assert post(d, tasks).status_code == 200
    items, _ = poll(d, [t["taskUUID"] for t in tasks])
    files = [requests.get(items[t["taskUUID"]][0]["videoURL"], timeout=10).content for t in tasks]
    a, b, c = (decode(f)["frames"] for f in files)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert (
        items[tasks[0]["taskUUID"]][0]["videoUUID"] != items[tasks[1]["taskUUID"]][0]["videoUUID"]
    )


def test_ovi_number_results_partial_listings(d: Any) -> None:
    d.job_seconds = 0.8  # results due at 0.8, 1.0, 1.2 s
    task = ovi(numberResults=3, seed=500, fps=8)
    assert post(d, [task]).json()["data"] == [
        {"taskType": "videoInference", "taskUUID": task["taskUUID"]}
    ]
    items, seen = poll(d, [task["taskUUID"]])
    final = items[task["taskUUID"]]
    assert [i["status"] for i in final] == ["success"] * 3
    assert len({i["videoUUID"] for i in final}) == 3
    assert len({i["videoURL"] for i in final}) == 3
    assert sorted(i["seed"] for i in final) == [500, 501, 502]
    assert "cost" not in final[0]
    statuses = [[i["status"] for i in body["data"]] for body in seen]
    assert all(len(s) == 3 for s in statuses)  # cumulative: one item per result, always
    assert any("success" in s and "processing" in s for s in statuses), statuses
    for s in statuses:  # finished ones first
        assert s == sorted(s, key=lambda x: x != "success")
    processing = [i for body in seen for i in body["data"] if i["status"] == "processing"]
    assert all(0 <= i["progress"] <= 99 for i in processing)


def test_ovi_with_start_image(d: Any) -> None:
    png = png_bytes((230, 10, 10))
    r = post(
        d, [{"taskType": "imageUpload", "taskUUID": tid(), "image": data_uri("image/png", png)}]
    )
    image_uuid = r.json()["data"][0]["imageUUID"]
    tasks = [
        ovi(inputs={"image": image_uuid}, fps=8),
        ovi(inputs={"image": data_uri("image/png", png)}, fps=8),
        ovi(inputs={"image": base64.b64encode(png).decode()}, fps=8),
    ]
    assert post(d, tasks).status_code == 200
    items, _ = poll(d, [t["taskUUID"] for t in tasks])
    for t in tasks:
        frame = decode(requests.get(items[t["taskUUID"]][0]["videoURL"], timeout=10).content)
        mean = frame["frames"][0][:, :, :].reshape(-1, 3).mean(axis=0)
        assert mean[0] > 150 and mean[1] < 100, mean  # mostly red, like the image


def test_ovi_image_references_checked(d: Any, uploaded: dict[str, str]) -> None:
    cases = [
        (tid(), "mediaNotFound"),
        (uploaded["wav_short"], "invalidImage"),  # known, but audio
        ("data:image/png;base64," + base64.b64encode(b"nope nope").decode(), "invalidImage"),
        ("ftp://example.com/cat.png", "invalidParameter"),  # Runware downloads over http(s)
    ]
    for ref, code in cases:
        r = post(d, [ovi(inputs={"image": ref})])
        assert r.status_code == 400, ref
        err = r.json()["errors"][0]
        assert (err["code"], err["parameter"]) == (code, "inputs.image"), err


def test_result_keys_media(tmp_path: Path) -> None:
    with double_mod.RunwareDouble(
        api_key=KEY, job_seconds=0.05, storage_dir=tmp_path, result_keys="media", ovi_duration=1.0
    ) as d2:
        items = submit_and_wait(d2, ovi(fps=8))
        assert {"mediaUUID", "mediaURL"} <= set(items[0]) and "videoURL" not in items[0]
        facts = decode(requests.get(items[0]["mediaURL"], timeout=10).content)
        assert len(facts["frames"]) == 8
    assert (tmp_path).exists()  # a given storage dir is kept


# --------------------------------------------------------------------------- sync-3 jobs


def test_sync3_with_audio_speech_segments(d: Any, uploaded: dict[str, str]) -> None:
    video = uploaded["video"]
    video_url = d.uploads[video]["url"]
    tasks = [
        sync3(video, audio=uploaded["flac"]),
        sync3(
            video_url,
            speech={"text": "hello there general", "voice": "auto"},
            settings={"tts": {"stability": 0.4}},
            outputFormat="WEBM",
        ),
        sync3(
            video,
            settings={
                "segments": [
                    {"startTime": 0.0, "endTime": 0.8, "audio": uploaded["wav_short"]},
                    {
                        "startTime": 1.0,
                        "endTime": 2.0,
                        "audio": d.uploads[uploaded["wav_long"]]["url"],
                        "audioStartTime": 0.5,
                        "audioEndTime": 1.5,
                    },
                ]
            },
            outputFormat="MOV",
        ),
    ]
    r = post(d, tasks)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 3
    items, _ = poll(d, [t["taskUUID"] for t in tasks])
    for t in tasks:
        (item,) = items[t["taskUUID"]]
        assert item["status"] == "success"
        facts = decode(requests.get(item["videoURL"], timeout=10).content)
        assert facts["size"] == (64, 48) and facts["fps"] == 24 and len(facts["frames"]) == 48
        assert facts["channels"] >= 1 and facts["audio_seconds"] == pytest.approx(2.0, abs=0.1)
        # the "mouth" is drawn: the lower middle is white-ish
        lower_middle = facts["frames"][10][int(48 * 0.75) : int(48 * 0.8), 28:36]
        assert lower_middle.mean() > 200
    flac_facts = decode(
        requests.get(items[tasks[0]["taskUUID"]][0]["videoURL"], timeout=10).content
    )
    assert (flac_facts["rate"], flac_facts["channels"]) == (22050, 1)  # kept from the input
    # the result can feed another job by UUID
    again = sync3(items[tasks[0]["taskUUID"]][0]["videoUUID"], audio=uploaded["wav_short"])
    assert post(d, [again]).status_code == 200


def test_sync3_sync_modes_fill_the_video_duration(d: Any, uploaded: dict[str, str]) -> None:
    modes = ["cut_off", "silence", "bounce", "remap"]
    tasks = [
        sync3(uploaded["video"], audio=uploaded["wav_short"], settings={"syncMode": m})
        for m in modes
    ] + [sync3(uploaded["video"], audio=uploaded["wav_long"], settings={"syncMode": "cut_off"})]
    assert post(d, tasks).status_code == 200
    items, _ = poll(d, [t["taskUUID"] for t in tasks])
    levels = {}
    for mode, t in zip([*modes, "cut_off_long"], tasks, strict=True):
        data = requests.get(items[t["taskUUID"]][0]["videoURL"], timeout=10).content
        facts = decode(data)
        assert facts["audio_seconds"] == pytest.approx(2.0, abs=0.1), mode
        assert (facts["rate"], facts["channels"]) == (16000, 1), mode
        with av.open(io.BytesIO(data)) as c:
            pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        levels[mode] = float(np.abs(pcm[int(1.3 * 16000) : int(1.7 * 16000)]).mean())
    # after the 1 s of audio: silence for cut_off/silence, sound for bounce/remap
    assert levels["cut_off"] < 0.01 and levels["silence"] < 0.01
    assert levels["bounce"] > 0.05 and levels["remap"] > 0.05
    assert levels["cut_off_long"] > 0.05


@pytest.mark.parametrize(
    ("settings_or_audio", "parameter"),
    [
        (
            {"segments": [{"startTime": 1.0, "endTime": 2.5, "audio": "wav_short"}]},
            "settings.segments[0].endTime",
        ),
        (
            {
                "segments": [
                    {
                        "startTime": 0,
                        "endTime": 1,
                        "audio": "wav_short",
                        "audioStartTime": 0.5,
                        "audioEndTime": 1.2,
                    }
                ]
            },
            "settings.segments[0].audioEndTime",
        ),
        (
            {"segments": [{"startTime": 0, "endTime": 1, "audio": "video-missing"}]},
            "settings.segments[0].audio",
        ),
        (
            {"activeSpeakerDetection": {"frameNumber": 48, "coordinates": [10, 10]}},
            "settings.activeSpeakerDetection.frameNumber",
        ),
        (
            {"activeSpeakerDetection": {"frameNumber": 3, "coordinates": [64, 10]}},
            "settings.activeSpeakerDetection.coordinates",
        ),
        (
            {"activeSpeakerDetection": {"boundingBoxes": [[0, 0, 10, 10]] * 47}},
            "settings.activeSpeakerDetection.boundingBoxes",
        ),
        (
            {"activeSpeakerDetection": {"boundingBoxes": [[0, 0, 10, 10]] * 47 + [[0, 0, 65, 10]]}},
            "settings.activeSpeakerDetection.boundingBoxes[47]",
        ),
    ],
)
def test_sync3_media_aware_checks(
    d: Any, uploaded: dict[str, str], settings_or_audio: dict[str, Any], parameter: str
) -> None:
    settings = json.loads(json.dumps(settings_or_audio))
    for seg in settings.get("segments", []):
        seg["audio"] = uploaded.get(seg["audio"], tid())
    audio = {} if "segments" in settings else {"audio": uploaded["wav_short"]}
    r = post(d, [sync3(uploaded["video"], settings=settings, **audio)])
    assert r.status_code == 400, r.text
    assert error_params(r) == [parameter]


def test_sync3_media_references(d: Any, uploaded: dict[str, str]) -> None:
    ok_boxes = {"activeSpeakerDetection": {"boundingBoxes": [[0, 0, 10, 10]] * 48}}
    d.job_seconds = 1000
    r = post(d, [sync3(uploaded["video"], audio=uploaded["wav_short"], settings=ok_boxes)])
    assert r.status_code == 200, r.text
    cases = [
        (sync3(tid(), audio=uploaded["wav_short"]), "inputs.video", "mediaNotFound"),
        (sync3(uploaded["wav_short"], audio=uploaded["wav_short"]), "inputs.video", "invalidMedia"),
        (
            sync3(uploaded["video"], audio="ftp://example.com/a.wav"),
            "inputs.audio",
            "invalidParameter",
        ),
        (
            sync3(d.files_url + f"/{tid()}.mp4", audio=uploaded["wav_short"]),
            "inputs.video",
            "mediaNotFound",
        ),
    ]
    for task, parameter, code in cases:
        r = post(d, [task])
        assert r.status_code == 400
        err = r.json()["errors"][0]
        assert (err["parameter"], err["code"]) == (parameter, code), err


# --------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def a_file(shared: Any, clips: dict[str, bytes]) -> tuple[str, bytes]:
    media_uuid = upload_media(shared, "video/mp4", clips["video"])
    return shared.uploads[media_uuid]["url"], clips["video"]


def test_range_requests(d: Any, a_file: tuple[str, bytes]) -> None:
    url, data = a_file
    size = len(data)
    r = requests.get(url, headers={"Range": "bytes=100-"}, timeout=10)
    assert r.status_code == 206 and r.content == data[100:]
    assert r.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
    assert r.headers["Content-Length"] == str(size - 100)
    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert r.status_code == 206 and r.content == data[10:20]
    r = requests.get(url, headers={"Range": "bytes=-50"}, timeout=10)
    assert r.status_code == 206 and r.content == data[-50:]
    r = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=10)
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    r = requests.head(url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Length"] == str(size)
    assert requests.get(url.replace(".mp4", ".webm"), timeout=10).status_code == 404
    assert d.log[-1]["range"] is None and d.log[-3]["range"] == f"bytes={size}-"


# --------------------------------------------------------------------------- faults


def test_fail_next(d: Any) -> None:
    ping = [{"taskType": "ping", "ping": True}]
    d.fail_next(429, count=2)
    for _ in range(2):
        r = post(d, ping)
        assert r.status_code == 429 and r.json()["errors"][0]["code"] == "rateLimitExceeded"
    assert post(d, ping).status_code == 200
    for status, code in [
        (500, "internalServerError"),
        (502, "internalServerError"),
        (503, "serviceUnavailable"),
        (504, "timeoutProvider"),
    ]:
        d.fail_next(status)
        r = post(d, ping)
        assert (r.status_code, r.json()["errors"][0]["code"]) == (status, code)
    d.fail_next(408, code="custom")
    assert post(d, ping).json()["errors"][0]["code"] == "custom"
    # only for a task type: other requests pass, and the failed one was not processed
    d.job_seconds = 1000
    d.fail_next(503, task_type="videoInference")
    assert post(d, ping).status_code == 200
    task = ovi()
    r = post(d, [task])
    assert r.status_code == 503 and r.json()["errors"][0]["taskUUID"] == task["taskUUID"]
    assert d.accepted_submissions() == []
    assert post(d, [task]).status_code == 200  # the retry is the first real submission
    assert [e["fault"] for e in d.log if e["fault"]] == ["fail_next"] * 8


def test_fail_downloads_and_drop(d: Any, a_file: tuple[str, bytes]) -> None:
    url, data = a_file
    d.fail_downloads(503, count=2)
    assert requests.get(url, timeout=10).status_code == 503
    assert requests.get(url, timeout=10).status_code == 503
    assert requests.get(url, timeout=10).content == data
    d.drop_download_after(1000)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, timeout=10).raise_for_status()
    with requests.get(url, headers={"Range": "bytes=1000-"}, timeout=10) as r:  # resume
        assert r.status_code == 206 and data[:1000] + r.content == data
    d.drop_download_after(10)
    with requests.get(url, stream=True, timeout=10) as r:
        assert r.headers["Content-Length"] == str(len(data))  # full length announced
        assert r.raw.read(10) == data[:10]
        with pytest.raises(urllib3.exceptions.HTTPError):  # then the connection closes
            r.raw.read(100)
    assert [e["fault"] for e in d.log] == ["fail_download"] * 2 + [None, "dropped", None, "dropped"]


def test_lose_next_response(d: Any) -> None:
    d.job_seconds = 1000
    d.lose_next_response()
    assert post(d, [{"taskType": "ping", "ping": True}]).status_code == 200  # not this type
    task = ovi()
    with pytest.raises(requests.exceptions.ConnectionError):
        post(d, [task])
    assert [t["taskUUID"] for t in d.accepted_submissions()] == [task["taskUUID"]]
    r = post(d, [task])  # the retry: already accepted
    assert r.json()["errors"][0]["code"] == "conflictTaskUUID"
    r = post(d, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert r.json()["data"][0]["status"] == "processing"
    assert d.log[-3]["status"] is None and d.log[-3]["fault"] == "lost"


def test_latency(d: Any) -> None:
    d.latency = 0.3
    start = time.monotonic()
    assert post(d, [{"taskType": "ping", "ping": True}]).status_code == 200
    assert time.monotonic() - start >= 0.3
    d.latency = 0.0


def test_failed_jobs_both_shapes(d: Any) -> None:
    d.job_seconds = 0.05
    d.fail_next_job("errors", code="contentPolicyViolation", message="nope")
    d.fail_next_job("data")
    first, second = ovi(), ovi()
    assert post(d, [first]).status_code == 200
    assert post(d, [second]).status_code == 200
    time.sleep(0.1)
    r = post(d, [{"taskType": "getResponse", "taskUUID": first["taskUUID"]}])
    assert r.status_code == 400 and "data" not in r.json()
    assert r.json()["errors"][0] | {"parameter": ""} == {
        "code": "contentPolicyViolation",
        "message": "nope",
        "parameter": "",
        "taskType": "videoInference",
        "taskUUID": first["taskUUID"],
        "status": "error",
    }
    r = post(d, [{"taskType": "getResponse", "taskUUID": second["taskUUID"]}])
    assert r.status_code == 200
    item = r.json()["data"][0]
    assert (item["status"], item["error"]["code"]) == ("error", "inferenceError")
    assert item["taskUUID"] == second["taskUUID"] and item["error"]["message"]
    third = ovi(fps=8)  # the faults were used up
    assert submit_and_wait(d, third)[0]["status"] == "success"


def test_job_that_never_finishes_and_expiry(d: Any) -> None:
    d.job_seconds = 10_000
    task = ovi()
    post(d, [task])
    for _ in range(3):
        r = post(d, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
        assert r.json()["data"][0]["status"] == "processing"
    d.expire_task(task["taskUUID"])
    r = post(d, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "taskExpired"
    r = post(d, [{"taskType": "getResponse", "taskUUID": tid()}])
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "taskNotFound"


def test_job_seconds_can_change_while_running(d: Any) -> None:
    d.job_seconds = 10_000
    task = ovi(fps=8)
    post(d, [task])
    d.job_seconds = 0.05
    items, _ = poll(d, [task["taskUUID"]])
    assert items[task["taskUUID"]][0]["status"] == "success"


# --------------------------------------------------------------------------- the log


def test_log_never_holds_the_key(d: Any, clips: dict[str, bytes]) -> None:
    post(
        d,
        [{"taskType": "authentication", "apiKey": KEY}, {"taskType": "ping", "ping": True}],
        headers=None,
    )
    post(d, [{"taskType": "ping", "ping": True}])
    post(d, [{"taskType": "ping", "ping": True}], headers={"Authorization": f"Bearer {KEY}x"})
    upload_media(d, "video/mp4", clips["video"])
    d.job_seconds = 1000
    post(d, [ovi(positivePrompt=f"my key is {KEY}")])  # even if a user pastes it somewhere
    dumped = json.dumps(d.log)
    assert KEY not in dumped
    entries = d.log
    assert entries[0]["tasks"][0] == {"taskType": "authentication", "apiKey": "***"}
    assert entries[0]["task_types"] == ["authentication", "ping"]
    assert entries[0]["method"] == "POST" and entries[0]["path"] == "/v1"
    assert entries[2]["status"] == 401
    media = entries[3]["tasks"][0]["media"]
    assert media.startswith("<") and media.endswith(" chars>")
    assert d.count("ping") == 3 and d.count("mediaStorage") == 1
    assert d.count("videoInference") == 1 and len(d.accepted_submissions()) == 1
    d.reset_log()
    assert d.log == [] and d.count("ping") == 0 and d.accepted_submissions() == []


def test_sanitize_helper() -> None:
    out = double_mod.sanitize({"apiKey": "k", "a": ["x" * 201, "short k-secret"]}, "k-secret")
    assert out == {"apiKey": "***", "a": ["<201 chars>", "short ***"]}


def test_cli_parser() -> None:
    cli = pack_module("nodes.runware.double.cli")
    args = cli.build_parser().parse_args(
        ["--port", "0", "--key", "k", "--job-seconds", "2", "--video-size", "320x192"]
    )
    assert (args.port, args.key, args.job_seconds, args.video_size) == (0, "k", 2.0, (320, 192))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--video-size", "321x192"])
