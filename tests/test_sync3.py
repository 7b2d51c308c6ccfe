"""RunwareSync3: inputs -> exactly the spec's fields; checks before spend; real runs."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest
import torch
from conftest import PACK, flatten, node_value, pack_module, sync3_request
from media_factory import probe, write_mp4

tasks = pack_module("nodes.runware.tasks")
errors = pack_module("nodes.runware.errors")
spec = pack_module("nodes.runware.spec")
host = pack_module("nodes.host")
nodes = PACK.NODE_CLASS_MAPPINGS
RunwareSync3 = nodes["RunwareSync3"]
Segment = nodes["RunwareSync3Segment"]
Speaker = nodes["RunwareSync3Speaker"]
TTS = nodes["RunwareSync3TTS"]

FACTS = tasks.VideoFacts(width=96, height=64, fps=12.0, frame_count=24, duration=2.0)
speaker_value = functools.partial(node_value, "RunwareSync3Speaker")
tts_value = functools.partial(node_value, "RunwareSync3TTS")
delivery_value = functools.partial(node_value, "RunwareDelivery")
V, A = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"


def seg(start, end, a_start=None, a_end=None, duration=3.0):
    return tasks.Segment(b"flac", "audio/flac", duration, start, end, a_start, a_end)


def build(**changes):
    args = dict(video_source=b"mp4", video_mime="video/mp4", video=FACTS,
                audio_source=b"flac")
    args.update(changes)
    return tasks.prepare_sync3(sync3_request(**args))




def diff(task):
    base, new = flatten(build().task), flatten(task)
    base.pop("taskUUID"), new.pop("taskUUID")
    return {k: v for k, v in new.items() if base.get(k, "<absent>") != v} | {
        k: "<removed>" for k in base if k not in new
    }


def test_default_request():
    job = build()
    fields = flatten(job.task)
    fields.pop("taskUUID")
    assert fields == {
        "taskType": "videoInference", "model": "sync:lipsync@3",
        "inputs.video": V, "inputs.audio": A, "settings.syncMode": "cut_off",
        "deliveryMethod": "async", "outputType": "URL", "includeCost": True,
        "numberResults": 1, "outputFormat": "MP4", "outputQuality": 95,
        "safety.checkContent": False, "safety.mode": "none",
    }
    assert [u.input_name for u in job.uploads] == ["video", "audio"]
    assert all(u.task_type == "mediaStorage" for u in job.uploads)


SPEECH = {"audio_source": None, "speech_text": "Hello there"}
CASES = [
    ({"sync_mode": "bounce"}, {"settings.syncMode": "bounce"}),
    ({"sync_mode": "silence"}, {"settings.syncMode": "silence"}),
    ({"sync_mode": "remap"}, {"settings.syncMode": "remap"}),
    (SPEECH, {"inputs.audio": "<removed>", "speech.text": "Hello there",
              "speech.voice": "auto"}),
    ({**SPEECH, "voice": "rachel"}, {"inputs.audio": "<removed>",
                                     "speech.text": "Hello there", "speech.voice": "rachel"}),
    ({**SPEECH, "tts": tts_value("elevenlabs", 0.4, 0.9)}, {
        "inputs.audio": "<removed>", "speech.text": "Hello there", "speech.voice": "auto",
        "settings.tts.provider": "elevenlabs", "settings.tts.stability": 0.4,
        "settings.tts.similarityBoost": 0.9}),
    ({"audio_source": None, "segments": [seg(0, 1.0), seg(1.2, 2.0, 0.5, 1.3)]}, {
        "inputs.audio": "<removed>",
        "settings.segments": [
            {"startTime": 0.0, "endTime": 1.0, "audio": "00000000-0000-4000-8000-000000000101"},
            {"startTime": 1.2, "endTime": 2.0, "audio": "00000000-0000-4000-8000-000000000102",
             "audioStartTime": 0.5, "audioEndTime": 1.3}]}),
    ({"speaker": speaker_value("auto")},
     {"settings.activeSpeakerDetection.autoDetect": True}),
    ({"speaker": speaker_value("point", 40, 30, 5)}, {
        "settings.activeSpeakerDetection.coordinates": [40.0, 30.0],
        "settings.activeSpeakerDetection.frameNumber": 5}),
    ({"speaker": speaker_value("boxes", boxes=json.dumps([[1, 2, 50, 60]] * 24))},
     {"settings.activeSpeakerDetection.boundingBoxes": [[1.0, 2.0, 50.0, 60.0]] * 24}),
    ({"number_results": 20}, {"numberResults": 20}),
    ({"output_format": "MOV"}, {"outputFormat": "MOV"}),
    ({"output_quality": 50}, {"outputQuality": 50}),
    ({"safety": "fast"}, {"safety.checkContent": True, "safety.mode": "fast"}),
    ({"delivery": delivery_value("https://h.example.com", "https://u.example.com", 90)},
     {"webhookURL": "https://h.example.com", "uploadEndpoint": "https://u.example.com",
      "ttl": 90}),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=lambda v: str(v)[:40])
def test_each_input_sets_exactly_its_spec_field(changes, expected):
    job = build(**changes)
    assert diff(job.task) == expected
    assert spec.validate_task(job.task) == []


def test_every_sync3_spec_field_is_reachable():
    def leaves(schema, prefix=""):
        props = schema.get("properties")
        if not props:
            return [prefix]
        out = []
        for name, child in props.items():
            out += leaves(child, f"{prefix}.{name}" if prefix else name)
        return out

    reached = set(flatten(build().task))
    for _changes, expected in CASES:
        reached |= set(expected)
    reached |= {"settings.segments"}  # an array: its items are checked in CASES above
    missing = {leaf for leaf in leaves(spec.task_schema("sync:lipsync@3"))
               if leaf not in reached}
    assert missing == set()


BAD = [
    ({"audio_source": None}, "audio"),
    ({"speech_text": "hi"}, "speech_text"),
    ({"audio_source": None, "speech_text": "x" * 5001}, "speech_text"),
    ({"tts": tts_value()}, "tts"),
    ({"sync_mode": "loop"}, "sync_mode"),
    ({"audio_source": None, "segments": [seg(0, 2.5)]}, "segments"),
    ({"audio_source": None, "segments": [seg(1.0, 1.0)]}, "segments"),
    ({"audio_source": None, "segments": [seg(0, 1.2), seg(1.0, 2.0)]}, "segments"),
    ({"audio_source": None, "segments": [seg(0, 1, 0.5, 3.5)]}, "segments"),
    ({"audio_source": None, "segments": [seg(0, 1, 0.5, None)]}, "segments"),
    ({"speaker": speaker_value("point", 200, 10, 0)}, "speaker.x/y"),
    ({"speaker": speaker_value("point", 10, 10, 24)}, "speaker.frame_number"),
    ({"speaker": speaker_value("boxes", boxes="[[1, 2, 50, 60]]")}, "speaker.boxes"),
    ({"speaker": speaker_value("boxes", boxes=json.dumps([[1, 2, 500, 60]] * 24))},
     "speaker.boxes"),
    ({"delivery": {"ttl": 10}}, "delivery.ttl"),
    ({"number_results": 21}, "number_results"),
]


@pytest.mark.parametrize(("changes", "input_name"), BAD, ids=lambda v: str(v)[:50])
def test_bad_request_names_the_input(changes, input_name):
    with pytest.raises(errors.ValidationError) as info:
        build(**changes)
    assert info.value.parameter == input_name


@pytest.mark.parametrize(
    ("boxes", "fragment"),
    [("not json", "not valid JSON"), ("[[1, 2, 3]]", "x1, y1, x2, y2"), ("[]", "non-empty")],
)
def test_speaker_boxes_text_is_checked(boxes, fragment):
    with pytest.raises(errors.ValidationError) as info:
        Speaker().build("boxes", 0, 0, 0, boxes)
    assert info.value.parameter == "boxes" and fragment in str(info.value)


def test_segment_node_chains_and_checks():
    audio = {"waveform": torch.zeros(1, 1, 8000), "sample_rate": 8000}
    first = Segment().build(audio, 0.0, 0.5)[0]
    both = Segment().build(audio, 0.6, 1.0, 0.1, 0.5, segments=first)[0]
    assert [s["start_time"] for s in both] == [0.0, 0.6]
    assert both[1]["audio_start_time"] == 0.1
    with pytest.raises(errors.ValidationError):
        Segment().build(audio, 0.6, 1.0, 0.1, -1.0)
    with pytest.raises(errors.ValidationError):
        Segment().build(audio, 1.0, 0.5)


# -- through the node, against the double --------------------------------------------------




@pytest.fixture
def clip(tmp_path):
    return write_mp4(tmp_path / "face.mp4", width=96, height=64, fps=12, frames=24)


def tone(seconds=1.5, rate=16000, channels=1):
    t = torch.arange(int(seconds * rate)) / rate
    return {"waveform": (0.2 * torch.sin(2 * torch.pi * 330 * t)).repeat(1, channels, 1),
            "sample_rate": rate}


def lipsync(**kwargs):
    kwargs.setdefault("sync_mode", "cut_off")
    return asyncio.run(RunwareSync3().lipsync(**kwargs))["result"]


def test_video_and_audio_run_keeps_size_fps_and_frames(env, clip):
    video, images, audio, fps, info = lipsync(video=host.video_from_file(clip), audio=tone())
    assert images[0].shape == (24, 64, 96, 3)
    assert fps == [12.0]
    assert audio[0]["waveform"].shape[1] == 1 and audio[0]["sample_rate"] == 16000
    out = probe(Path(json.loads(info[0])["file"]))
    assert (out["width"], out["height"], out["frames"]) == (96, 64, 24)
    sent = env.accepted_submissions()[0]
    # The file-backed VIDEO went up as its original bytes.
    video_upload = env.uploads[sent["inputs"]["video"]]
    assert Path(video_upload["path"]).read_bytes() == clip.read_bytes()


def test_images_and_fps_with_speech(env):
    frames = torch.rand(10, 48, 80, 3)
    video, images, audio, fps, info = lipsync(images=frames, fps=10.0,
                                             speech_text="Hello from the double")
    assert images[0].shape == (10, 48, 80, 3) and fps == [10.0]
    sent = env.accepted_submissions()[0]
    assert sent["speech"] == {"text": "Hello from the double", "voice": "auto"}


def test_two_segments_with_different_audio(env, clip):
    chain = Segment().build(tone(1.0, 16000), 0.0, 0.9)[0]
    chain = Segment().build(tone(2.0, 22050, 2), 1.0, 2.0, 0.5, 1.5, segments=chain)[0]
    video, images, audio, fps, info = lipsync(video=host.video_from_file(clip),
                                             segments=chain)
    sent = env.accepted_submissions()[0]
    assert [s["startTime"] for s in sent["settings"]["segments"]] == [0.0, 1.0]
    assert env.count("mediaStorage") == 3
    assert images[0].shape[0] == 24


@pytest.mark.parametrize("mode", ["cut_off", "bounce", "silence", "remap"])
def test_each_sync_mode_runs(env, clip, mode):
    lipsync(sync_mode=mode, video=host.video_from_file(clip), audio=tone(3.0))
    assert env.accepted_submissions()[0]["settings"]["syncMode"] == mode


def test_same_video_is_uploaded_once_per_session(env, clip):
    lipsync(video=host.video_from_file(clip), audio=tone())
    lipsync(video=host.video_from_file(clip), audio=tone(), sync_mode="silence")
    assert env.count("mediaStorage") == 2  # the video once, the (identical) audio once
    assert len(env.accepted_submissions()) == 2


def test_ovi_to_sync3_chain_in_one_process(env):
    ovi = nodes["RunwareOvi"]()
    video, *_ = asyncio.run(ovi.generate(
        prompt="A woman says <S>Good morning<E>", seed=1, steps=30, fps=12,
        video_cfg_scale=5.0, audio_cfg_scale=4.0))["result"]
    out_video, images, audio, fps, info = lipsync(video=video[0], audio=tone(2.0))
    assert images[0].shape[0] == 60  # Ovi's 5 s at 12 fps, kept by sync-3
    assert fps == [12.0]
    assert json.loads(info[0])["model"] == "sync:lipsync@3"


@pytest.mark.parametrize(
    ("kwargs", "input_name"),
    [
        ({"audio": "CLIP_AUDIO", "images": torch.rand(2, 32, 32, 3)}, "images"),
        ({"audio": "CLIP_AUDIO", "video": None}, "video"),
        ({}, "audio"),
        ({"audio": "CLIP_AUDIO", "speech_text": "two voices"}, "speech_text"),
        ({"speech_text": "hi", "tts": "TTS"}, None),
        ({"audio": "CLIP_AUDIO", "tts": "TTS"}, "tts"),
        ({"segments": "LATE_SEGMENT"}, "segments"),
        ({"audio": "CLIP_AUDIO", "speaker": "FAR_POINT"}, "speaker.x/y"),
        ({"audio": "CLIP_AUDIO", "speaker": "LATE_FRAME"}, "speaker.frame_number"),
        ({"audio": "CLIP_AUDIO", "speaker": "FEW_BOXES"}, "speaker.boxes"),
        ({"audio": {"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}}, "audio"),
        ({"images": torch.rand(3, 32, 32, 3), "fps": 0.0, "video": None,
          "audio": "CLIP_AUDIO"}, "fps"),
    ],
)
def test_bad_inputs_make_zero_requests(env, clip, kwargs, input_name):
    values = {
        "CLIP_AUDIO": tone(),
        "TTS": TTS().build("elevenlabs", 0.5, -1)[0],
        "LATE_SEGMENT": Segment().build(tone(), 1.5, 2.5)[0],
        "FAR_POINT": Speaker().build("point", 500, 10, 0, "")[0],
        "LATE_FRAME": Speaker().build("point", 10, 10, 99, "")[0],
        "FEW_BOXES": Speaker().build("boxes", 0, 0, 0, "[[0, 0, 10, 10]]")[0],
    }
    args = {"video": host.video_from_file(clip)}
    for key, value in kwargs.items():
        args[key] = values.get(value, value) if isinstance(value, str) else value
    args = {k: v for k, v in args.items() if v is not None}
    if input_name is None:  # tts with speech is fine: it must run
        lipsync(**args)
        return
    with pytest.raises(errors.ValidationError) as info:
        lipsync(**args)
    assert info.value.parameter == input_name, str(info.value)
    assert env.log == []


def test_node_help_text():
    for cls in (RunwareSync3, Segment, Speaker, TTS):
        assert cls.DESCRIPTION
        definition = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, (_, options) in definition.get(section, {}).items():
                assert options.get("tooltip"), f"{cls.__name__}.{name}"
    sync_tip = RunwareSync3.INPUT_TYPES()["required"]["sync_mode"][1]["tooltip"]
    for mode in ("cut_off", "bounce", "silence", "remap"):
        assert mode in sync_tip
    text = (Path(__file__).resolve().parent.parent / "web" / "docs"
            / "RunwareSync3.md").read_text()
    for section in ("required", "optional"):
        for name in RunwareSync3.INPUT_TYPES()[section]:
            assert f"`{name}`" in text
