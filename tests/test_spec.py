"""The shared spec validation (nodes/runware/spec.py): schema, formats, prose rules."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import pack_module

spec = pack_module("nodes.runware.spec")


def ovi(**extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": spec.OVI_MODEL,
        "positivePrompt": "A cat says <S>hello<E>",
        "deliveryMethod": "async",
    }
    task.update(extra)
    return task


def sync3(**extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": spec.SYNC3_MODEL,
        "inputs": {"video": str(uuid.uuid4()), "audio": str(uuid.uuid4())},
    }
    task.update(extra)
    return task


def params(task: dict[str, Any], **kw: Any) -> list[str]:
    return [v.parameter for v in spec.validate_task(task, **kw)]


def only(task: dict[str, Any], **kw: Any) -> Any:
    violations = spec.validate_task(task, **kw)
    assert len(violations) == 1, violations
    return violations[0]


def test_task_schema_is_the_request_body_items_and_cached() -> None:
    ovi_schema = spec.task_schema(spec.OVI_MODEL)
    assert ovi_schema["properties"]["model"]["const"] == "runware:190@1"
    assert spec.task_schema(spec.SYNC3_MODEL)["properties"]["model"]["const"] == "sync:lipsync@3"
    ovi_schema["properties"].clear()  # a private copy: the cache is not affected
    assert "steps" in spec.task_schema(spec.OVI_MODEL)["properties"]
    with pytest.raises(KeyError):
        spec.task_schema("sync:3@0")


def test_valid_tasks_pass() -> None:
    assert spec.validate_task(ovi()) == []
    assert spec.validate_task(ovi(inputs={"image": str(uuid.uuid4())}, steps=50, fps=24)) == []
    assert spec.validate_task(sync3()) == []
    segments = [
        {"startTime": 0, "endTime": 1.5, "audio": str(uuid.uuid4())},
        {"startTime": 1.5, "endTime": 2.0, "audio": "https://example.com/a.wav"},
    ]
    assert (
        spec.validate_task(
            sync3(inputs={"video": "https://x.y/v.mp4"}, settings={"segments": segments})
        )
        == []
    )


def test_ovi_text_only_is_allowed_unless_disabled() -> None:
    assert spec.validate_task(ovi()) == []
    v = only(ovi(), text_only_ovi_allowed=False)
    assert (v.parameter, v.code) == ("inputs", "missingParameter")
    v = only(ovi(inputs={}))
    assert (v.parameter, v.code) == ("inputs.image", "missingParameter")


def test_unknown_parameters_are_named() -> None:
    v = only(ovi(negativePrompt="x"))
    assert (v.parameter, v.code) == ("negativePrompt", "unknownParameter")
    v = only(ovi(acceleratorOptions={"cacheStart": 1}))
    assert (v.parameter, v.code) == ("acceleratorOptions.cacheStart", "unknownParameter")
    assert params(sync3(positivePrompt="x")) == ["positivePrompt"]


@pytest.mark.parametrize("steps", [0, 101, 1000])
def test_steps_out_of_range(steps: int) -> None:
    v = only(ovi(steps=steps))
    assert v.parameter == "steps"
    assert "between 1 and 100" in v.message


def test_types_and_enums() -> None:
    v = only(ovi(steps="20"))
    assert v.parameter == "steps" and "integer" in v.message
    v = only(ovi(outputFormat="GIF"))
    assert v.parameter == "outputFormat" and "MP4, WEBM, MOV" in v.message
    v = only(ovi(deliveryMethod="sync"))
    assert v.parameter == "deliveryMethod" and "async" in v.message
    v = only(ovi(numberResults=5))
    assert v.parameter == "numberResults"
    v = only(ovi(fps=0))  # the schema has no minimum; 0 fps cannot be generated
    assert v.parameter == "fps" and "between 1 and 120" in v.message


def test_cache_steps_order_and_limit() -> None:
    v = only(ovi(acceleratorOptions={"cacheStartStep": 10, "cacheEndStep": 10}))
    assert v.parameter == "acceleratorOptions.cacheEndStep"
    assert "greater than cacheStartStep" in v.message
    v = only(ovi(acceleratorOptions={"cacheStartStep": 2, "cacheEndStep": 31}))  # steps: 30
    assert v.parameter == "acceleratorOptions.cacheEndStep" and "30" in v.message
    v = only(ovi(steps=20, acceleratorOptions={"cacheEndStep": 25}))
    assert v.parameter == "acceleratorOptions.cacheEndStep" and "20" in v.message
    assert (
        spec.validate_task(ovi(acceleratorOptions={"cacheStartStep": 0, "cacheEndStep": 30})) == []
    )
    v = only(ovi(acceleratorOptions={"cacheStartStepPercentage": 50, "cacheEndStepPercentage": 40}))
    assert v.parameter == "acceleratorOptions.cacheEndStepPercentage"


def test_both_cache_forms_refused() -> None:
    v = only(ovi(acceleratorOptions={"cacheStartStep": 1, "cacheStartStepPercentage": 10}))
    assert v.code == "conflictingParameters"
    assert v.parameter == "acceleratorOptions.cacheStartStepPercentage"
    assert "either cacheStartStep or cacheStartStepPercentage" in v.message
    assert "not both" in v.message
    v = only(ovi(acceleratorOptions={"cacheEndStep": 10, "cacheEndStepPercentage": 50}))
    assert v.parameter == "acceleratorOptions.cacheEndStepPercentage"


@pytest.mark.parametrize("value", [0, 0.0, 0.01, 0.07, 0.29, 0.57, 0.58, 0.99, 1, 1.0])
def test_tea_cache_distance_multiple_of_accepts_hundredths(value: float) -> None:
    assert spec.validate_task(ovi(acceleratorOptions={"teaCacheDistance": value})) == []


@pytest.mark.parametrize("value", [0.575, 0.001, 0.333])
def test_tea_cache_distance_multiple_of_refuses_finer(value: float) -> None:
    v = only(ovi(acceleratorOptions={"teaCacheDistance": value}))
    assert v.parameter == "acceleratorOptions.teaCacheDistance"
    assert "multiple of 0.01" in v.message


def test_is_multiple_of() -> None:
    assert spec.is_multiple_of(0.57, 0.01)
    assert not spec.is_multiple_of(0.575, 0.01)
    assert spec.is_multiple_of(12, 3) and not spec.is_multiple_of(13, 3)
    assert spec.is_multiple_of(2.5, 0.5)


def test_formats() -> None:
    assert spec.is_uuid(str(uuid.uuid4()))
    assert not spec.is_uuid("abc")
    assert not spec.is_uuid(uuid.uuid4().hex)  # canonical dashed form only
    assert not spec.is_uuid("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz")
    assert spec.is_absolute_uri("https://example.com/a.png?x=1")
    assert spec.is_absolute_uri("data:image/png;base64,AAAA")
    assert not spec.is_absolute_uri("http:///nohost")
    assert not spec.is_absolute_uri("/relative/path")
    assert not spec.is_absolute_uri("https://exa mple.com")
    assert not spec.is_absolute_uri("c:/windows/file.png")
    v = only(ovi(taskUUID="not-a-uuid"))
    assert v.parameter == "taskUUID" and "UUID" in v.message
    v = only(ovi(webhookURL="example.com/hook"))
    assert v.parameter == "webhookURL"


def test_media_alternatives_message() -> None:
    v = only(ovi(inputs={"image": "not base64 at all!"}))
    assert v.parameter == "inputs.image"
    assert "a UUID" in v.message and "a URL" in v.message and "base64" in v.message
    assert spec.validate_task(ovi(inputs={"image": "data:image/png;base64,iVBORw0KGgo="})) == []
    assert spec.validate_task(ovi(inputs={"image": "iVBORw0KGgo="})) == []
    v = only(sync3(inputs={"video": "nope", "audio": str(uuid.uuid4())}))
    assert v.parameter == "inputs.video" and "a UUID or a URL" in v.message


def test_sync3_data_uri_refused_for_media() -> None:
    v = only(sync3(inputs={"video": "data:video/mp4;base64,AAAA", "audio": str(uuid.uuid4())}))
    assert v.parameter == "inputs.video" and "upload" in v.message


def test_sync3_exactly_one_voice() -> None:
    v = only(sync3(speech={"text": "hi", "voice": "auto"}))
    assert v.code == "conflictingParameters"
    assert v.parameter == "speech"
    assert "exactly one of inputs.audio, speech, settings.segments must be given" in v.message
    v = only(sync3(inputs={"video": str(uuid.uuid4())}))
    assert v.parameter == "" and v.code == "missingParameter"
    assert "exactly one of inputs.audio, speech, settings.segments" in v.message
    segs = [{"startTime": 0, "endTime": 1, "audio": str(uuid.uuid4())}]
    v = only(sync3(settings={"segments": segs}))
    assert v.parameter == "settings.segments"


def test_sync3_tts_needs_speech() -> None:
    v = only(sync3(settings={"tts": {"stability": 0.5}}))
    assert v.parameter == "speech" and v.message == "settings.tts needs speech"
    ok = sync3(
        inputs={"video": str(uuid.uuid4())},
        speech={"text": "hi", "voice": "auto"},
        settings={"tts": {"provider": "elevenlabs"}},
    )
    assert spec.validate_task(ok) == []
    v = only(sync3(inputs={"video": str(uuid.uuid4())}, speech={"text": "hi"}))
    assert v.parameter == "speech.voice" and v.code == "missingParameter"


def test_sync3_active_speaker_detection() -> None:
    asd = {"coordinates": [10, 20]}
    v = only(sync3(settings={"activeSpeakerDetection": asd}))
    assert v.parameter == "settings.activeSpeakerDetection.frameNumber"
    assert v.code == "missingParameter"
    asd = {"coordinates": [10, 20], "frameNumber": 0, "boundingBoxes": [[0, 0, 5, 5]]}
    v = only(sync3(settings={"activeSpeakerDetection": asd}))
    assert v.code == "conflictingParameters"
    assert "either boundingBoxes or coordinates" in v.message
    v = only(sync3(settings={"activeSpeakerDetection": {"boundingBoxes": [[0, 0, 5]]}}))
    assert v.parameter == "settings.activeSpeakerDetection.boundingBoxes[0]"
    assert "exactly 4" in v.message


def test_sync3_segments_rules() -> None:
    a = str(uuid.uuid4())
    base = {"inputs": {"video": str(uuid.uuid4())}}
    bad_order = [{"startTime": 1.0, "endTime": 1.0, "audio": a}]
    assert params(sync3(**base, settings={"segments": bad_order})) == [
        "settings.segments[0].endTime"
    ]
    overlap = [
        {"startTime": 0, "endTime": 1.5, "audio": a},
        {"startTime": 2.0, "endTime": 3.0, "audio": a},
        {"startTime": 1.2, "endTime": 1.9, "audio": a},
    ]
    v = only(sync3(**base, settings={"segments": overlap}))
    assert v.parameter == "settings.segments[2].startTime" and "overlap" in v.message
    audio_order = [
        {"startTime": 0, "endTime": 1, "audio": a, "audioStartTime": 2, "audioEndTime": 1}
    ]
    assert params(sync3(**base, settings={"segments": audio_order})) == [
        "settings.segments[0].audioEndTime"
    ]
    half = [{"startTime": 0, "endTime": 1, "audio": a, "audioStartTime": 2}]
    v = only(sync3(**base, settings={"segments": half}))
    assert v.parameter == "settings.segments[0].audioEndTime" and v.code == "missingParameter"
    fine = [{"startTime": 0.5, "endTime": 1.57, "audio": a}]
    assert spec.validate_task(sync3(**base, settings={"segments": fine})) == []
    coarse = [{"startTime": 0.5, "endTime": 1.575, "audio": a}]
    assert params(sync3(**base, settings={"segments": coarse})) == ["settings.segments[0].endTime"]


def test_sync3_sync_mode_values() -> None:
    v = only(sync3(settings={"syncMode": "loop"}))
    assert v.parameter == "settings.syncMode"
    assert "bounce, cut_off, silence, remap" in v.message
    for mode in ("bounce", "cut_off", "silence", "remap"):
        assert spec.validate_task(sync3(settings={"syncMode": mode})) == []


def test_model_problems() -> None:
    v = only(ovi(model="sync:3@0"))
    assert v.parameter == "model" and "runware:190@1" in v.message
    task = ovi()
    del task["model"]
    assert only(task).code == "missingParameter"
    assert only("nope").parameter == ""  # type: ignore[arg-type]


def test_violation_is_frozen_and_printable() -> None:
    v = spec.SpecViolation("steps", "steps must be between 1 and 100", "invalidParameter")
    assert str(v) == "steps: steps must be between 1 and 100"
    with pytest.raises(AttributeError):
        v.parameter = "x"  # type: ignore[misc]
