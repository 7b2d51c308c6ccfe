"""RunwareOvi inputs -> exactly the spec's fields; bad inputs refused before any spend."""

from __future__ import annotations

import pytest
from conftest import flatten, node_value, ovi_request, pack_module

tasks = pack_module("nodes.runware.tasks")
errors = pack_module("nodes.runware.errors")
spec = pack_module("nodes.runware.spec")
ovi_prompt = pack_module("nodes.runware.ovi_prompt")

BASE = dict(
    prompt="A fox says <S>hello<E> <AUDCAP>soft wind<ENDAUDCAP>",
    seed=0, steps=30, fps=24, video_cfg_scale=5.0, audio_cfg_scale=4.0,
)
ACCEL_DEFAULT = node_value("RunwareAccelerator")


def build(**changes):
    return tasks.prepare_ovi(ovi_request(**{**BASE, **changes})).task




def changed_fields(task):
    base, new = flatten(build()), flatten(task)
    base.pop("taskUUID"), new.pop("taskUUID")
    return {k: v for k, v in new.items() if base.get(k, "<absent>") != v} | {
        k: "<removed>" for k in base if k not in new
    }


def test_defaults_are_exactly_what_the_spec_expects():
    task = build()
    assert spec.validate_task(task) == []
    fields = flatten(task)
    fields.pop("taskUUID")
    assert fields == {
        "taskType": "videoInference",
        "model": "runware:190@1",
        "positivePrompt": BASE["prompt"],
        "seed": 0,
        "steps": 30,
        "fps": 24,
        "advancedFeatures.videoCFGScale": 5.0,
        "advancedFeatures.audioCFGScale": 4.0,
        "deliveryMethod": "async",
        "outputType": "URL",
        "includeCost": True,
        "numberResults": 1,
        "outputFormat": "MP4",
        "outputQuality": 95,
        "safety.checkContent": False,
        "safety.mode": "none",
    }
    assert "inputs" not in task  # text-to-video: no inputs object at all


# (node input changes, exactly the API fields that must change)
CASES = [
    ({"prompt": "<S>Hi<E>"}, {"positivePrompt": "<S>Hi<E>"}),
    ({"seed": 9223372036854775807}, {"seed": 9223372036854775807}),
    ({"steps": 50}, {"steps": 50}),
    ({"fps": 30}, {"fps": 30}),
    ({"video_cfg_scale": 7.5}, {"advancedFeatures.videoCFGScale": 7.5}),
    ({"audio_cfg_scale": 2.0}, {"advancedFeatures.audioCFGScale": 2.0}),
    ({"image_png": b"png"}, {"inputs.image": "00000000-0000-4000-8000-000000000001"}),
    ({"video_negative_prompt": "blur"}, {"advancedFeatures.videoNegativePrompt": "blur"}),
    ({"audio_negative_prompt": "hiss"}, {"advancedFeatures.audioNegativePrompt": "hiss"}),
    ({"slg_layer": 11}, {"advancedFeatures.slgLayer": 11}),
    ({"slg_layer": 0}, {"advancedFeatures.slgLayer": 0}),
    ({"number_results": 4}, {"numberResults": 4}),
    ({"output_format": "WEBM"}, {"outputFormat": "WEBM"}),
    ({"output_format": "MOV"}, {"outputFormat": "MOV"}),
    ({"output_quality": 20}, {"outputQuality": 20}),
    ({"safety": "fast"}, {"safety.checkContent": True, "safety.mode": "fast"}),
    ({"safety": "full"}, {"safety.checkContent": True, "safety.mode": "full"}),
    ({"accelerator": ACCEL_DEFAULT}, {
        "acceleratorOptions.teaCache": False,
        "acceleratorOptions.teaCacheDistance": 0.5,
        "acceleratorOptions.cacheMaxConsecutiveSteps": 3,
    }),
    ({"accelerator": node_value("RunwareAccelerator", tea_cache=True, tea_cache_distance=0.57)}, {
        "acceleratorOptions.teaCache": True,
        "acceleratorOptions.teaCacheDistance": 0.57,
        "acceleratorOptions.cacheMaxConsecutiveSteps": 3,
    }),
    ({"accelerator": node_value("RunwareAccelerator", cache_start=2, cache_end=20,
                                               cache_max_consecutive_steps=5)}, {
        "acceleratorOptions.teaCache": False,
        "acceleratorOptions.teaCacheDistance": 0.5,
        "acceleratorOptions.cacheStartStep": 2,
        "acceleratorOptions.cacheEndStep": 20,
        "acceleratorOptions.cacheMaxConsecutiveSteps": 5,
    }),
    ({"accelerator": node_value("RunwareAccelerator", cache_unit="percent", cache_start=10,
                                               cache_end=90)}, {
        "acceleratorOptions.teaCache": False,
        "acceleratorOptions.teaCacheDistance": 0.5,
        "acceleratorOptions.cacheStartStepPercentage": 10,
        "acceleratorOptions.cacheEndStepPercentage": 90,
        "acceleratorOptions.cacheMaxConsecutiveSteps": 3,
    }),
    ({"delivery": node_value("RunwareDelivery", webhook_url="https://hooks.example.com/rw")},
     {"webhookURL": "https://hooks.example.com/rw"}),
    ({"delivery": node_value("RunwareDelivery", upload_endpoint="https://bucket.example.com/o?sig=1")},
     {"uploadEndpoint": "https://bucket.example.com/o?sig=1"}),
    ({"delivery": node_value("RunwareDelivery", ttl=3600)}, {"ttl": 3600}),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=lambda v: str(v)[:40])
def test_each_node_input_sets_exactly_its_spec_field(changes, expected):
    task = build(**changes)
    assert changed_fields(task) == expected
    assert spec.validate_task(task) == []


def schema_leaf_paths(schema, prefix=""):
    props = schema.get("properties")
    if not props:
        return [prefix]
    paths = []
    for name, child in props.items():
        paths += schema_leaf_paths(child, f"{prefix}.{name}" if prefix else name)
    return paths


def test_every_spec_field_is_reachable_from_some_node_input():
    reached = set()
    for _changes, expected in CASES:
        reached |= set(expected)
    reached |= set(flatten(build()))
    schema_leaves = set(schema_leaf_paths(spec.task_schema("runware:190@1")))
    assert len(schema_leaves) > 30
    # Fields the pack sets itself (not user choices) are in the default task.
    missing = {leaf for leaf in schema_leaves if leaf not in reached}
    assert missing == set()


BAD = [
    ({"steps": 0}, "steps"),
    ({"steps": 101}, "steps"),
    ({"fps": 0}, "fps"),
    ({"fps": 121}, "fps"),
    ({"video_cfg_scale": 10.5}, "video_cfg_scale"),
    ({"audio_cfg_scale": -1.0}, "audio_cfg_scale"),
    ({"seed": -1}, "seed"),
    ({"slg_layer": 31}, "slg_layer"),
    ({"number_results": 5}, "number_results"),
    ({"output_quality": 10}, "output_quality"),
    ({"output_format": "GIF"}, "output_format"),
    ({"safety": "paranoid"}, "safety"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "He says <S>hello"}, "prompt"),
    ({"prompt": "<S>a <AUDCAP>b<ENDAUDCAP> c<E>"}, "prompt"),
    ({"prompt": "<S> <E> rest"}, "prompt"),
    ({"accelerator": node_value("RunwareAccelerator", cache_start=20, cache_end=10)},
     "accelerator.cache_end"),
    ({"accelerator": node_value("RunwareAccelerator", cache_start=1, cache_end=31)},
     "accelerator.cache_end"),
    ({"accelerator": node_value("RunwareAccelerator", tea_cache_distance=1.5)},
     "accelerator.tea_cache_distance"),
    ({"accelerator": node_value("RunwareAccelerator", cache_max_consecutive_steps=6)},
     "accelerator.cache_max_consecutive_steps"),
    ({"accelerator": node_value("RunwareAccelerator", cache_unit="percent", cache_start=100)},
     "accelerator.cache_start"),
    ({"delivery": {"webhookURL": "not a url"}}, "delivery.webhook_url"),
]


@pytest.mark.parametrize(("changes", "input_name"), BAD, ids=lambda v: str(v)[:40])
def test_bad_input_names_the_node_input(changes, input_name):
    with pytest.raises(errors.ValidationError) as info:
        build(**changes)
    assert info.value.parameter == input_name
    assert input_name in str(info.value)


def test_range_errors_say_the_allowed_range():
    with pytest.raises(errors.ValidationError) as info:
        build(steps=500)
    assert "100" in str(info.value)


def test_delivery_ttl_below_60_is_refused():
    with pytest.raises(errors.ValidationError) as info:
        node_value("RunwareDelivery", ttl=30)
    assert info.value.parameter == "delivery.ttl"
    assert node_value("RunwareDelivery") == {}


# -- prompt tags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("He says <S>hi", 8, "never closed"),
        ("hi<E>", 2, "closes nothing"),
        ("<S>a<ENDAUDCAP>", 4, "cannot close"),
        ("<S>a <S>b<E>", 5, "nested"),
        ("x <AUDCAP>  <ENDAUDCAP>", 2, "empty"),
        ("ok <s>hi<e>", 3, "case-sensitive"),
    ],
)
def test_tag_problems_name_the_position(text, position, fragment):
    problems = ovi_prompt.find_tag_problems(text)
    assert problems and problems[0].position == position
    assert fragment in problems[0].message


def test_tag_problem_reports_line_and_column():
    problem = ovi_prompt.find_tag_problems("scene\nthen <S>hi")[0]
    assert (problem.line, problem.column) == (2, 6)


def test_well_formed_prompt_has_no_problems():
    assert ovi_prompt.find_tag_problems(
        "A <S>one<E> and <S>two<E>. <AUDCAP>rain, thunder<ENDAUDCAP>"
    ) == []


def test_prompt_builder():
    prompt = ovi_prompt.build_prompt("A chef in a kitchen.", "Hello there\n\nBon appetit",
                                     "clatter of pans")
    assert prompt == ("A chef in a kitchen. <S>Hello there<E> <S>Bon appetit<E> "
                      "<AUDCAP>clatter of pans<ENDAUDCAP>")
    with pytest.raises(errors.ValidationError) as info:
        ovi_prompt.build_prompt("x", "<S>nested<E>", "")
    assert info.value.parameter == "speech"


def test_shared_tag_cases_match_the_python_checker():
    """The same vectors drive the web extension's checker (tests/js): both must agree."""
    import json
    from pathlib import Path

    cases = json.loads((Path(__file__).parent / "fixtures" / "ovi_tag_cases.json").read_text())
    assert len(cases) >= 15
    for case in cases:
        problems = ovi_prompt.find_tag_problems(case["text"])
        assert len(problems) == len(case["problems"]), case["name"]
        for got, want in zip(problems, case["problems"], strict=True):
            assert got.position == want["position"], case["name"]
            assert want["fragment"] in got.message, case["name"]
            for key in ("line", "column"):
                if key in want:
                    assert getattr(got, key) == want[key], case["name"]
