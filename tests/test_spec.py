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


# -- one reading (issue 17): rules shared by the node pre-flight and the double ----------

ODD = [None, True, 0, 1.5, "", [], ["runware:190@1"], {}, {"a": [1]}, [[[]]]]


@pytest.mark.parametrize("value", ODD, ids=repr)
def test_any_json_shape_for_model_or_task_type_is_a_violation_not_a_crash(value) -> None:
    v = only(ovi(model=value))
    assert v.parameter == "model"
    assert v.code in ("missingParameter", "invalidParameter", "modelNotFound")
    assert spec.validate_task(ovi(taskType=value))[0].parameter == "taskType"
    for model in spec.MODELS:  # no field of either model makes the validator raise
        for name in spec.task_schema(model)["properties"]:
            spec.validate_task({**(ovi() if model == spec.OVI_MODEL else sync3()),
                                name: value})


def test_values_json_cannot_carry_are_reported_once() -> None:
    v = only(ovi(advancedFeatures={"videoCFGScale": float("nan")}))
    assert (v.parameter, v.message) == (
        "advancedFeatures.videoCFGScale",
        "advancedFeatures.videoCFGScale must be a finite number (got nan)")
    v = only(ovi(acceleratorOptions={"teaCacheDistance": float("inf")}))
    assert "finite" in v.message and "multiple" not in v.message
    v = only(ovi(positivePrompt="A cat \ud83d says hi"))
    assert v.parameter == "positivePrompt" and "U+D83D at character 6" in v.message
    v = only(ovi(**{"extra\udc00": 1}))
    assert "surrogate" in v.message
    assert spec.validate_task(ovi(positivePrompt="A cat \U0001F408 says <S>hi<E>")) == []
    deep: list = []
    for _ in range(5000):  # deeper than Python's stack: no RecursionError
        deep = [deep]
    assert spec.validate_task(ovi(extra=deep))[0].parameter == "extra"


def test_find_surrogate() -> None:
    assert spec.find_surrogate("plain \U0001F600 text") is None
    assert spec.find_surrogate("ab\udfffc") == 2


@pytest.mark.parametrize("name", ["webhookURL", "uploadEndpoint"])
@pytest.mark.parametrize(("url", "ok"), [
    ("https://hooks.example.com/a?x=1", True),
    ("http://10.0.0.5:8080/hook", True),
    ("HTTPS://EXAMPLE.COM/UP", True),
    ("ftp://example.com/a", False),
    ("mailto:me@example.com", False),
    ("javascript:alert(1)", False),
    ("file:///tmp/x", False),
    ("data:text/plain;base64,AAAA", False),
])
def test_callback_urls_are_http_or_https(name: str, url: str, ok: bool) -> None:
    violations = spec.validate_task(ovi(**{name: url}))
    if ok:
        assert violations == []
    else:
        assert [v.parameter for v in violations] == [name]
        assert "http:// or https://" in violations[0].message


def test_media_urls_are_http_or_https() -> None:
    assert spec.validate_task(ovi(inputs={"image": "https://example.com/a.png"})) == []
    v = only(ovi(inputs={"image": "ftp://example.com/a.png"}))
    assert v.parameter == "inputs.image" and "downloads media" in v.message
    v = only(sync3(inputs={"video": "s3://bucket/v.mp4", "audio": str(uuid.uuid4())}))
    assert v.parameter == "inputs.video"
    assert spec.validate_task(sync3(inputs={"video": "http://cdn.example.com/v.mp4",
                                            "audio": "https://cdn.example.com/a"})) == []


def test_blank_prompt_and_speech_are_refused() -> None:
    for prompt in ("", " ", "\n\t "):
        v = only(ovi(positivePrompt=prompt))
        assert (v.parameter, v.code) == ("positivePrompt", "invalidPositivePrompt")
    v = only(sync3(inputs={"video": str(uuid.uuid4())}, speech={"text": "  ", "voice": "a"}))
    assert v.parameter == "speech.text" and "blank" in v.message


def test_cache_start_without_end_must_be_before_the_last_step() -> None:
    assert spec.validate_task(ovi(steps=20, acceleratorOptions={"cacheStartStep": 19})) == []
    v = only(ovi(steps=20, acceleratorOptions={"cacheStartStep": 20}))
    assert v.parameter == "acceleratorOptions.cacheStartStep" and "steps (20)" in v.message
    v = only(ovi(acceleratorOptions={"cacheStartStep": 30}))  # default steps: 30
    assert v.parameter == "acceleratorOptions.cacheStartStep"
    # integral floats are integers to JSON Schema, and to the rules
    v = only(ovi(steps=20.0, acceleratorOptions={"cacheEndStep": 21.0}))
    assert v.parameter == "acceleratorOptions.cacheEndStep"


def test_time_limit_rounds_the_length_up_to_the_grid() -> None:
    assert spec.time_limit(2.0) == 2.0
    assert spec.time_limit(25 / 12) == pytest.approx(2.09)
    assert spec.time_limit(1.337) == pytest.approx(1.34)
    assert spec.time_limit(0.7000000000000001) == pytest.approx(0.7)
    assert spec.time_limit(0) == 0.0 and spec.time_limit(float("nan")) == 0.0


VIDEO = spec.MediaFacts(kind="video", width=96, height=64, frame_count=25, fps=12.0,
                        duration=25 / 12)
AUDIO = spec.MediaFacts(kind="audio", duration=1.337)


def media(task: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    assert spec.validate_task(task) == []
    return [v.parameter for v in spec.check_media(task, facts.get)]


def test_check_media_boundaries() -> None:
    v, a = str(uuid.uuid4()), str(uuid.uuid4())
    facts = {v: VIDEO, a: AUDIO}
    asd = "settings.activeSpeakerDetection"

    def seg(end: float, **extra: Any) -> dict[str, Any]:
        return sync3(inputs={"video": v}, settings={"segments": [
            {"startTime": 0, "endTime": end, "audio": a, **extra}]})

    assert media(seg(2.09), facts) == []
    assert media(seg(2.1), facts) == ["settings.segments[0].endTime"]
    assert media(seg(1.0, audioStartTime=0, audioEndTime=1.34), facts) == []
    assert media(seg(1.0, audioStartTime=0, audioEndTime=1.35), facts) == [
        "settings.segments[0].audioEndTime"]

    def speaker(value: dict[str, Any]) -> dict[str, Any]:
        return sync3(inputs={"video": v, "audio": a},
                     settings={"activeSpeakerDetection": value})

    assert media(speaker({"coordinates": [95.9, 63], "frameNumber": 24}), facts) == []
    assert media(speaker({"coordinates": [96, 0], "frameNumber": 0}), facts) == [
        f"{asd}.coordinates"]
    assert media(speaker({"coordinates": [0, 64], "frameNumber": 0}), facts) == [
        f"{asd}.coordinates"]
    assert media(speaker({"coordinates": [0, 0], "frameNumber": 25}), facts) == [
        f"{asd}.frameNumber"]
    assert media(speaker({"boundingBoxes": [[0, 0, 96, 64]] * 25}), facts) == []
    assert media(speaker({"boundingBoxes": [[0, 0, 96, 64]] * 24}), facts) == [
        f"{asd}.boundingBoxes"]
    assert media(speaker({"boundingBoxes": [[0, 0, 96, 64.5]] * 25}), facts) == [
        f"{asd}.boundingBoxes[0]"]
    # unknown facts (a remote URL): the media rules are left to the service
    assert media(speaker({"coordinates": [5000, 0], "frameNumber": 9000}), {}) == []


def test_box_geometry_and_negative_points_need_no_media() -> None:
    asd = "settings.activeSpeakerDetection"
    v = only(sync3(settings={"activeSpeakerDetection": {"boundingBoxes": [[5, 0, 5, 9]]}}))
    assert v.parameter == f"{asd}.boundingBoxes[0]" and "x1 < x2" in v.message
    v = only(sync3(settings={"activeSpeakerDetection": {"coordinates": [-1, 0],
                                                        "frameNumber": 0}}))
    assert v.parameter == f"{asd}.coordinates"


def test_check_media_kinds() -> None:
    v, a, i = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    image = spec.MediaFacts(kind="image", width=8, height=8)
    silent = spec.MediaFacts(kind="video", width=8, height=8, frame_count=4, fps=4.0)
    facts = {v: VIDEO, a: AUDIO, i: image}
    assert media(ovi(inputs={"image": i}), facts) == []
    got = spec.check_media(ovi(inputs={"image": a}), facts.get)
    assert [(x.parameter, x.code) for x in got] == [("inputs.image", "invalidImage")]
    assert media(sync3(inputs={"video": a, "audio": a}), facts) == ["inputs.video"]
    assert media(sync3(inputs={"video": v, "audio": i}), facts) == ["inputs.audio"]
    assert media(sync3(inputs={"video": v, "audio": v}), {v: silent}) == ["inputs.audio"]
    unreadable = {a: spec.MediaFacts(kind="unreadable", problem="not valid base64")}
    assert media(sync3(inputs={"video": v, "audio": a}), {**facts, **unreadable}) == [
        "inputs.audio"]
