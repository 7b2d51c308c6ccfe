"""Every node's float and text inputs: NaN / infinity and unpaired surrogates (issue 11).

Table-driven over the nodes' own INPUT_TYPES: each FLOAT input gets NaN, +inf and -inf,
each STRING input a lone surrogate. Each must be refused with a ValidationError naming
that input, before any request. A node added later without a row in NODE_SETUP fails
here until it gets one.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import uuid
from typing import Any

import pytest
import torch
from conftest import PACK, pack_module
from media_factory import write_mp4

errors = pack_module("nodes.runware.errors")
host = pack_module("nodes.host")
options = pack_module("nodes.runware.options")

NODES = PACK.NODE_CLASS_MAPPINGS
BAD_FLOATS = [math.nan, math.inf, -math.inf]
BAD_TEXTS = ["He says \ud83d hi", "\udc00"]


def tone(seconds: float = 1.5, rate: int = 16000) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    return {"waveform": (0.2 * torch.sin(2 * torch.pi * 330 * t)).reshape(1, 1, -1),
            "sample_rate": rate}


# Node id -> the inputs a valid call needs besides the widgets' defaults (sockets and
# values whose default is "not set"). "clip" is replaced by a real video file.
NODE_SETUP: dict[str, dict[str, Any]] = {
    "RunwareOvi": {"prompt": "A fox says <S>hello<E> <AUDCAP>wind<ENDAUDCAP>"},
    "RunwareOviPrompt": {"scene": "A fox in the snow", "speech": "Hello"},
    "RunwareAccelerator": {},
    "RunwareSync3": {"video": "clip", "audio": "tone"},
    "RunwareSync3Segment": {"audio": "tone", "start_time": 0.0, "end_time": 1.0},
    "RunwareSync3Speaker": {"mode": "point"},
    "RunwareSync3TTS": {},
    "RunwareDelivery": {"webhook_url": "https://hooks.example.com/x"},
    "RunwareFetchResult": {"task_uuid": str(uuid.uuid4())},
    "RunwareVideoFrames": {"video": "clip"},
}


def widget_inputs(cls: type) -> dict[str, tuple[str, dict]]:
    """name -> (type, options) of every widget input (required and optional)."""
    definition = cls.INPUT_TYPES()
    out = {}
    for section in ("required", "optional"):
        for name, spec in definition.get(section, {}).items():
            kind = spec[0]
            options = spec[1] if len(spec) > 1 else {}
            if isinstance(kind, (list, tuple)):
                kind = "COMBO"
            out[name] = (kind, options)
    return out


def base_kwargs(node_id: str, clip) -> dict[str, Any]:
    cls = NODES[node_id]
    kwargs: dict[str, Any] = {}
    for name, (kind, options) in widget_inputs(cls).items():
        if kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
            kwargs[name] = options.get("default")
        elif kind == "COMBO":
            choices = cls.INPUT_TYPES().get("required", {}).get(name) or \
                cls.INPUT_TYPES()["optional"][name]
            kwargs[name] = options.get("default", choices[0][0])
    for name, value in NODE_SETUP[node_id].items():
        if value == "clip":
            value = host.video_from_file(clip)
        elif value == "tone":
            value = tone()
        kwargs[name] = value
    return {k: v for k, v in kwargs.items() if v is not None}


def call(node_id: str, kwargs: dict[str, Any]) -> Any:
    cls = NODES[node_id]
    result = getattr(cls(), cls.FUNCTION)(**kwargs)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return result


CASES = [
    (node_id, name, value)
    for node_id, cls in sorted(NODES.items())
    for name, (kind, _) in widget_inputs(cls).items()
    for value in (BAD_FLOATS if kind == "FLOAT" else BAD_TEXTS if kind == "STRING" else [])
]


def test_every_node_has_a_setup_row():
    assert set(NODES) == set(NODE_SETUP), "add the new node to NODE_SETUP"
    kinds = {kind for cls in NODES.values() for kind, _ in widget_inputs(cls).values()}
    assert {"FLOAT", "STRING"} <= kinds
    assert len(CASES) >= 50


@pytest.fixture
def clip(tmp_path):
    return write_mp4(tmp_path / "face.mp4", width=96, height=64, fps=12, frames=24)


@pytest.mark.parametrize("node_id", sorted(NODE_SETUP))
def test_base_call_is_valid(env, clip, node_id):
    """The rows below change one input of a call that is otherwise accepted."""
    kwargs = base_kwargs(node_id, clip)
    if node_id == "RunwareFetchResult":
        # A well-formed but unknown taskUUID gets past the input checks to Runware.
        with pytest.raises(errors.RunwareError) as info:
            call(node_id, kwargs)
        assert info.value.parameter != "task_uuid"
        return
    call(node_id, kwargs)


@pytest.mark.parametrize(("node_id", "name", "value"), CASES,
                         ids=[f"{n}-{i}-{v!r}" for n, i, v in CASES])
def test_bad_float_or_text_names_the_input(env, clip, node_id, name, value):
    kwargs = base_kwargs(node_id, clip)
    kwargs[name] = value
    with pytest.raises(errors.ValidationError) as info:
        call(node_id, kwargs)
    parameter = info.value.parameter or ""
    assert parameter == name or parameter.endswith("." + name), (parameter, str(info.value))
    assert name in str(info.value)
    assert env.log == [], "a request was made before the input was checked"


def test_check_node_inputs_passes_good_values():
    options.check_node_inputs("X", a=1.5, b="text \U0001F600 ok", c=0, d=None, e=-0.0)
    with pytest.raises(errors.ValidationError, match="U\\+D83D at character 4"):
        options.check_node_inputs("X", prompt="abc \ud83d")


@pytest.mark.parametrize(("name", "value", "scheme"), [
    ("webhook_url", "ftp://x", "ftp"),
    ("upload_endpoint", "mailto:a@b", "mailto"),
    ("webhook_url", "FTP://files.example.com/in", "ftp"),
])
def test_delivery_urls_must_be_http_or_https(name, value, scheme):
    """The Runware Delivery node refuses a URL Runware cannot POST / PUT to, naming the
    input, before any job uses it; http(s) goes through as given."""
    values = {"webhook_url": "", "upload_endpoint": "", "ttl": 0, name: value}
    with pytest.raises(errors.ValidationError) as info:
        call("RunwareDelivery", values)
    assert info.value.parameter == f"delivery.{name}"
    assert name in str(info.value) and f"{scheme}:" in str(info.value)
    assert "http://" in str(info.value) and "https://" in (info.value.hint or "")
    (options_out,) = call("RunwareDelivery", {
        "webhook_url": " https://hooks.example.com/done ",
        "upload_endpoint": "https://bucket.example.com/put?sig=1", "ttl": 0})
    assert options_out == {"webhookURL": "https://hooks.example.com/done",
                           "uploadEndpoint": "https://bucket.example.com/put?sig=1"}
