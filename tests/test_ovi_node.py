"""RunwareOvi end to end through the node layer, against the local double."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from conftest import PACK, pack_module

errors = pack_module("nodes.runware.errors")
RunwareOvi = PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]
RunwareOviPrompt = PACK.NODE_CLASS_MAPPINGS["RunwareOviPrompt"]
RunwareAccelerator = PACK.NODE_CLASS_MAPPINGS["RunwareAccelerator"]
RunwareDelivery = PACK.NODE_CLASS_MAPPINGS["RunwareDelivery"]

PROMPT = "A robot in a workshop says <S>All systems go<E>. <AUDCAP>whirring motors<ENDAUDCAP>"




def generate(**kwargs):
    args = dict(prompt=PROMPT, seed=3, steps=30, fps=12, video_cfg_scale=5.0,
                audio_cfg_scale=4.0)
    args.update(kwargs)
    out = asyncio.run(RunwareOvi().generate(**args))
    assert set(out) == {"ui", "result"}
    return out["result"]


def test_text_to_video_outputs(env, tmp_path):
    video, images, audio, fps, info = generate()
    assert [len(x) for x in (video, images, audio, fps, info)] == [1] * 5
    frames = images[0]
    assert frames.dtype == torch.float32 and frames.ndim == 4 and frames.shape[-1] == 3
    assert frames.shape[0] == 5 * 12  # the double's 5 s at the requested fps
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert fps == [12.0]
    assert audio[0]["sample_rate"] == 44100
    assert audio[0]["waveform"].shape[:2] == (1, 2)
    assert abs(audio[0]["waveform"].shape[2] / 44100 - 5.0) < 0.1
    details = json.loads(info[0])
    assert details["model"] == "runware:190@1" and details["seed"] == 3
    assert details["cost"] > 0
    assert Path(details["file"]).is_file()
    assert Path(details["file"]).is_relative_to(tmp_path / "output")
    assert video[0].get_dimensions() == (frames.shape[2], frames.shape[1])
    sent = env.accepted_submissions()
    assert len(sent) == 1 and "inputs" not in sent[0]


def test_image_to_video_uploads_the_first_frame(env):
    image = torch.rand(1, 96, 160, 3)
    generate(image=image)
    sent = env.accepted_submissions()[0]
    assert sent["inputs"]["image"] in env.uploads
    assert env.count("imageUpload") == 1


def test_multiple_results_are_lists_in_a_stable_order(env):
    video, images, audio, fps, info = generate(number_results=3)
    assert [len(x) for x in (video, images, audio, fps, info)] == [3] * 5
    seeds = [json.loads(i)["seed"] for i in info]
    assert seeds == sorted(seeds) and len(set(seeds)) == 3
    assert len({json.loads(i)["videoUUID"] for i in info}) == 3
    assert len(env.accepted_submissions()) == 1


def test_every_option_node_reaches_the_request(env):
    accel = RunwareAccelerator().build(True, 0.3, "percent", 10, 80, 2)[0]
    delivery = RunwareDelivery().build("https://hooks.example.com/x", "", 600)[0]
    prompt = RunwareOviPrompt().build("A cat on a sofa.", "Feed me", "purring")[0]
    generate(prompt=prompt, accelerator=accel, delivery=delivery, output_format="WEBM",
             safety="full", slg_layer=9, video_negative_prompt="blur")
    sent = env.accepted_submissions()[0]
    assert sent["acceleratorOptions"] == {
        "teaCache": True, "teaCacheDistance": 0.3, "cacheMaxConsecutiveSteps": 2,
        "cacheStartStepPercentage": 10, "cacheEndStepPercentage": 80,
    }
    assert sent["webhookURL"] == "https://hooks.example.com/x" and sent["ttl"] == 600
    assert sent["positivePrompt"] == "A cat on a sofa. <S>Feed me<E> <AUDCAP>purring<ENDAUDCAP>"
    assert sent["outputFormat"] == "WEBM" and sent["safety"] == {"checkContent": True,
                                                                   "mode": "full"}


def test_unlinked_image_and_audio_outputs_are_not_decoded(env):
    graph = {"5": {"class_type": "RunwareOvi", "inputs": {}},
             "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0]}}}
    video, images, audio, fps, info = generate(unique_id="5", graph=graph)
    assert images == [None] and audio == [None]
    assert fps == [12.0] and video[0] is not None


@pytest.mark.parametrize(
    ("kwargs", "input_name"),
    [
        ({"steps": 0}, "steps"),
        ({"fps": 500}, "fps"),
        ({"prompt": "unbalanced <S>tag"}, "prompt"),
        ({"image": torch.rand(2, 32, 32, 3)}, "image"),
        ({"image": torch.full((1, 32, 32, 3), float("nan"))}, "image"),
        ({"accelerator": {"cacheStartStep": 5, "cacheEndStep": 40}}, "accelerator.cache_end"),
        ({"number_results": 9}, "number_results"),
    ],
)
def test_bad_inputs_make_zero_requests(env, kwargs, input_name):
    with pytest.raises(errors.ValidationError) as info:
        generate(**kwargs)
    assert info.value.parameter == input_name
    assert env.log == []


def test_missing_key_makes_zero_requests(env, monkeypatch):
    monkeypatch.delenv("RUNWARE_API_KEY")
    with pytest.raises(errors.MissingApiKeyError) as info:
        generate(image=torch.rand(1, 32, 32, 3))
    assert "RUNWARE_API_KEY" in str(info.value)
    assert env.log == []


def test_runware_refusing_text_only_is_surfaced_clearly(env):
    env.ovi_requires_image = True
    with pytest.raises(errors.ValidationError) as info:
        generate()
    assert "inputs.image" in str(info.value)
    assert env.accepted_submissions() == []


def test_node_help_text():
    for cls in (RunwareOvi, RunwareOviPrompt, RunwareAccelerator, RunwareDelivery):
        assert cls.DESCRIPTION
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, (_, options) in spec.get(section, {}).items():
                assert options.get("tooltip"), f"{cls.__name__}.{name} has no tooltip"
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    docs = Path(__file__).resolve().parent.parent / "web" / "docs" / "RunwareOvi.md"
    text = docs.read_text()
    for name in RunwareOvi.INPUT_TYPES()["required"]:
        assert f"`{name}`" in text
    for name in RunwareOvi.INPUT_TYPES()["optional"]:
        assert f"`{name}`" in text


def test_seed_defaults_to_fixed_friendly_definition():
    seed = RunwareOvi.INPUT_TYPES()["required"]["seed"]
    assert seed[0] == "INT" and seed[1]["max"] == 9223372036854775807
    assert seed[1]["default"] == 0


def test_runs_under_comfyuis_inference_mode(env):
    """ComfyUI executes nodes inside torch.inference_mode() (execution.py)."""
    with torch.inference_mode():
        video, images, audio, fps, info = generate(number_results=2)
    assert images[0].shape[0] == 60 and audio[0]["waveform"].shape[1] == 2
    with torch.inference_mode():
        again = generate(number_results=2)  # from the cache, decoded again
    assert torch.equal(again[1][0], images[0])
