"""Ovi nodes: prompt (+ first frame) -> video with a synchronized audio track."""

from __future__ import annotations

from typing import Any

from .inputs import (
    DELIVERY_INPUT,
    HIDDEN,
    REUSE_INPUT,
    Inputs,
    TableNode,
    bool_input,
    combo_input,
    float_input,
    int_input,
    output_inputs,
    socket_input,
    string_input,
)
from .run import (
    ModelNode,
    run_job,
)
from .runware.encode import image_to_png
from .runware.options import CACHE_UNITS, AcceleratorOptions, accelerator_options, check_node_inputs
from .runware.ovi_prompt import AUDIO_FORMATS, build_prompt
from .runware.tasks import OviRequest, prepare_ovi

ACCELERATOR_TYPE = "RUNWARE_ACCELERATOR"
SEED_MAX = 9_223_372_036_854_775_807

INPUTS = Inputs(
    string_input("prompt", "positivePrompt: the scene. Speech inside <S>...<E> is spoken; a "
                 "sound description inside <AUDCAP>...<ENDAUDCAP> (or on a last line starting "
                 "with 'Audio:') is rendered as audio.", multiline=True, api="positivePrompt"),
    int_input("seed", 0, 0, SEED_MAX, "seed: same seed + same inputs = same video. Changing "
              "it makes a new (paid) take.", api="seed", control_after_generate=True),
    int_input("steps", 30, 1, 100, "steps: denoising steps; more = more detail, slower.",
              api="steps"),
    int_input("fps", 24, 1, 120, "fps: frames per second of the generated video.", api="fps"),
    float_input("video_cfg_scale", 5.0, 0.0, 10.0, 0.1, "videoCFGScale: how closely the "
                "picture follows the prompt.", api="advancedFeatures.videoCFGScale"),
    float_input("audio_cfg_scale", 4.0, 0.0, 10.0, 0.1, "audioCFGScale: how closely the "
                "sound follows the prompt.", api="advancedFeatures.audioCFGScale"),
    socket_input("image", "IMAGE", "inputs.image: the first frame (one image). Without it "
                 "the video is made from the prompt alone.", api="inputs.image", optional=True),
    string_input("video_negative_prompt", "videoNegativePrompt: what to keep out of the "
                 "picture (empty = none).", multiline=True,
                 api="advancedFeatures.videoNegativePrompt", optional=True),
    string_input("audio_negative_prompt", "audioNegativePrompt: what to keep out of the "
                 "sound (empty = none).", multiline=True,
                 api="advancedFeatures.audioNegativePrompt", optional=True),
    int_input("slg_layer", -1, -1, 30, "slgLayer: skip-layer guidance layer (-1 = not sent).",
              api="advancedFeatures.slgLayer", optional=True),
    *output_inputs(4),
    socket_input("accelerator", ACCELERATOR_TYPE, "Optional TeaCache / step-cache settings "
                 "from a Runware Accelerator node.", api="acceleratorOptions", optional=True),
    DELIVERY_INPUT,
    REUSE_INPUT,
    hidden=HIDDEN,
)


def ovi_request(values: dict[str, Any]) -> OviRequest:
    """Runware Ovi's input values (``INPUTS.values``) -> the request the core takes: the
    first frame becomes PNG bytes; ``reuse_cached_result`` is the runner's, not the API's."""
    fields = dict(values)
    image = fields.pop("image")
    fields.pop("reuse_cached_result")
    image_png = None if image is None else image_to_png(image, input_name="image")
    return OviRequest(**fields, image_png=image_png)


class RunwareOvi(ModelNode):
    DESCRIPTION = (
        "Runware Ovi (runware:190@1): turns a prompt, optionally with a first-frame image, "
        "into a 5 second video with a synchronized audio track (speech, effects, music) in "
        "one pass. Put speech inside <S>...<E> and describe sounds inside "
        "<AUDCAP>...<ENDAUDCAP> or on a last line 'Audio: ...' (or use the Runware Ovi "
        "Prompt node). Each run is a paid "
        "Runware job: keep control_after_generate on 'fixed' so an unchanged re-queue does "
        "not pay again. Needs RUNWARE_API_KEY."
    )
    FUNCTION = "generate"
    INPUTS = INPUTS

    async def generate(self, *args: Any, unique_id: str | None = None,
                       graph: dict | None = None, **inputs: Any) -> dict[str, Any]:
        values = INPUTS.values(inputs, args)
        job = prepare_ovi(ovi_request(values))
        return await run_job(job, node_id=unique_id, label="Ovi", graph=graph,
                             reuse=values["reuse_cached_result"])


PROMPT_INPUTS = Inputs(
    string_input("scene", "What we see: people, place, action, camera.", multiline=True),
    string_input("speech", "What is said, one utterance per line (each becomes <S>...<E>). "
                 "Empty = no speech.", multiline=True),
    string_input("audio_description", "What we hear besides speech: voice qualities, "
                 "effects, music, ambience (becomes <AUDCAP>...<ENDAUDCAP>). Empty = none.",
                 multiline=True),
    combo_input("audio_format", AUDIO_FORMATS, AUDIO_FORMATS[0],
                "How the sound description is written: 'AUDCAP tags' = "
                "<AUDCAP>...<ENDAUDCAP> (the format in Runware's Ovi specification); "
                "'Audio: line' = a last line 'Audio: ...' (Ovi's newer prompt format).",
                optional=True),
)


class RunwareOviPrompt(TableNode):
    DESCRIPTION = (
        "Builds a correctly tagged Ovi prompt: the scene, then each line of speech wrapped "
        "in <S>...<E>, then the sound description in <AUDCAP>...<ENDAUDCAP> or, in Ovi's "
        "newer format, on a last line starting with 'Audio:'."
    )
    FUNCTION = "build"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("prompt",)
    OUTPUT_TOOLTIPS = ("The tagged prompt, for Runware Ovi's prompt input.",)
    INPUTS = PROMPT_INPUTS

    def build(self, *args: Any, **inputs: Any) -> tuple[str]:
        v = PROMPT_INPUTS.values(inputs, args)
        check_node_inputs("RunwareOviPrompt", scene=v["scene"], speech=v["speech"],
                          audio_description=v["audio_description"])
        return (build_prompt(v["scene"], v["speech"], v["audio_description"],
                             v["audio_format"]),)


ACCELERATOR_INPUTS = Inputs(
    bool_input("tea_cache", False, "teaCache: skip redundant transformer computations.",
               api="teaCache"),
    float_input("tea_cache_distance", 0.5, 0.0, 1.0, 0.01, "teaCacheDistance: lower = "
                "quality, higher = speed.", api="teaCacheDistance"),
    combo_input("cache_unit", CACHE_UNITS, "steps",
                "Whether cache_start / cache_end count steps (cacheStartStep/cacheEndStep) or "
                "percent of the steps (cacheStartStepPercentage/cacheEndStepPercentage)."),
    int_input("cache_start", -1, -1, 100, "Step (or percent) where caching starts; -1 = not "
              "sent. Must be below cache_end.",
              api=("cacheStartStep", "cacheStartStepPercentage")),
    int_input("cache_end", -1, -1, 100, "Step (or percent) where caching ends; -1 = not sent. "
              "In steps it must not exceed Ovi's steps.",
              api=("cacheEndStep", "cacheEndStepPercentage")),
    int_input("cache_max_consecutive_steps", 3, 1, 5, "cacheMaxConsecutiveSteps: most "
              "cached steps in a row before a fresh one.", api="cacheMaxConsecutiveSteps"),
)


class RunwareAccelerator(TableNode):
    DESCRIPTION = (
        "Speed-ups for Runware Ovi (acceleratorOptions): TeaCache, and caching between a "
        "start and an end step given in steps or in percent of the steps."
    )
    FUNCTION = "build"
    RETURN_TYPES = (ACCELERATOR_TYPE,)
    RETURN_NAMES = ("accelerator",)
    OUTPUT_TOOLTIPS = ("Connect to the accelerator input of Runware Ovi.",)
    INPUTS = ACCELERATOR_INPUTS

    def build(self, *args: Any, **inputs: Any) -> tuple[AcceleratorOptions]:
        return (accelerator_options(**ACCELERATOR_INPUTS.values(inputs, args)),)
