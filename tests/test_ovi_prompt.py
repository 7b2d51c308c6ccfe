"""Ovi's two forms of the sound description: <AUDCAP>...<ENDAUDCAP> and an "Audio:" line.

The shared vectors (tests/fixtures/ovi_tag_cases.json) are checked against the Python
checker in test_ovi_request.py and against the page's port in tests/js/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PACK, pack_module

ovi_prompt = pack_module("nodes.runware.ovi_prompt")
errors = pack_module("nodes.runware.errors")
RunwareOviPrompt = PACK.NODE_CLASS_MAPPINGS["RunwareOviPrompt"]
CASES = json.loads((Path(__file__).parent / "fixtures" / "ovi_tag_cases.json").read_text())


def test_the_shared_vectors_cover_the_audio_line_form():
    audio = [c for c in CASES if "Audio:" in c["text"]]
    assert any(not c["problems"] for c in audio)
    fragments = {p["fragment"] for c in audio for p in c["problems"]}
    assert {"is empty", "second Audio: line", "one form only"} <= fragments
    for case in audio:  # the full message is pinned, so the JS port must match it word for word
        got = [str(p.message) for p in ovi_prompt.find_tag_problems(case["text"])]
        assert got == [p["message"] for p in case["problems"]], case["name"]


def test_an_audio_line_prompt_passes_the_check_before_spending():
    ovi_prompt.check_prompt("A chef. <S>Order up!<E>\nAudio: pans clatter, sizzling")
    with pytest.raises(errors.ValidationError, match="one form only") as info:
        ovi_prompt.check_prompt("<AUDCAP>rain<ENDAUDCAP>\nAudio: rain")
    assert info.value.parameter == "prompt"


def test_builder_tagged_form_is_the_default():
    assert ovi_prompt.build_prompt("A chef.", "Order up!", "pans") == \
        "A chef. <S>Order up!<E> <AUDCAP>pans<ENDAUDCAP>"
    assert RunwareOviPrompt().build("A chef.", "Order up!", "pans") == \
        ("A chef. <S>Order up!<E> <AUDCAP>pans<ENDAUDCAP>",)


def test_builder_audio_line_form():
    prompt = RunwareOviPrompt().build("A chef in a kitchen.", "Order up!\nNow!",
                                      "clatter of pans,\n  sizzling", "Audio: line")[0]
    assert prompt == ("A chef in a kitchen. <S>Order up!<E> <S>Now!<E>\n"
                      "Audio: clatter of pans, sizzling")
    assert ovi_prompt.find_tag_problems(prompt) == []
    assert ovi_prompt.build_prompt("", "", "rain", "Audio: line") == "Audio: rain"
    assert ovi_prompt.build_prompt("A room.", "", "", "Audio: line") == "A room."


@pytest.mark.parametrize("field,value", [
    ("scene", "A room.\nAudio: rain"), ("speech", "  Audio: hello"),
    ("audio_description", "<AUDCAP>x<ENDAUDCAP>"),
])
def test_builder_refuses_text_that_already_has_tags_or_an_audio_line(field, value):
    args = {"scene": "A room.", "speech": "", "audio_description": "", field: value}
    with pytest.raises(errors.ValidationError) as info:
        ovi_prompt.build_prompt(**args, audio_format="Audio: line")
    assert info.value.parameter == field


def test_builder_refuses_an_unknown_format():
    with pytest.raises(errors.ValidationError) as info:
        ovi_prompt.build_prompt("A room.", "", "x", "AUDIO")
    assert info.value.parameter == "audio_format"


def test_audio_format_is_a_new_optional_input_at_the_end():
    spec = RunwareOviPrompt.INPUT_TYPES()
    assert list(spec["required"]) == ["scene", "speech", "audio_description"]
    assert list(spec["optional"]) == ["audio_format"]
    options, extra = spec["optional"]["audio_format"]
    assert options == ["AUDCAP tags", "Audio: line"] and extra["default"] == "AUDCAP tags"
