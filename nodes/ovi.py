"""Ovi nodes: prompt (+ first frame) -> video with a synchronized audio track."""

from __future__ import annotations

from typing import Any

from .common import (
    CATEGORY,
    DELIVERY_INPUT,
    FLOAT,
    HIDDEN,
    INT,
    MODEL_OUTPUT_IS_LIST,
    MODEL_OUTPUT_NAMES,
    MODEL_OUTPUT_TOOLTIPS,
    MODEL_OUTPUTS,
    REUSE_INPUT,
    STRING,
    is_changed,
    output_inputs,
    run_job,
)
from .runware.encode import image_to_png
from .runware.ovi_prompt import AUDIO_FORMATS, build_prompt
from .runware.tasks import CACHE_UNITS, accelerator_options, check_node_inputs, prepare_ovi

ACCELERATOR_TYPE = "RUNWARE_ACCELERATOR"
SEED_MAX = 9_223_372_036_854_775_807


class RunwareOvi:
    DESCRIPTION = (
        "Runware Ovi (runware:190@1): turns a prompt, optionally with a first-frame image, "
        "into a 5 second video with a synchronized audio track (speech, effects, music) in "
        "one pass. Put speech inside <S>...<E> and describe sounds inside "
        "<AUDCAP>...<ENDAUDCAP> or on a last line 'Audio: ...' (or use the Runware Ovi "
        "Prompt node). Each run is a paid "
        "Runware job: keep control_after_generate on 'fixed' so an unchanged re-queue does "
        "not pay again. Needs RUNWARE_API_KEY."
    )
    CATEGORY = CATEGORY
    FUNCTION = "generate"
    RETURN_TYPES = MODEL_OUTPUTS
    RETURN_NAMES = MODEL_OUTPUT_NAMES
    OUTPUT_TOOLTIPS = MODEL_OUTPUT_TOOLTIPS
    OUTPUT_IS_LIST = MODEL_OUTPUT_IS_LIST
    IS_CHANGED = classmethod(is_changed)

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "prompt": STRING(
                    "positivePrompt: the scene. Speech inside <S>...<E> is spoken; a sound "
                    "description inside <AUDCAP>...<ENDAUDCAP> (or on a last line starting "
                    "with 'Audio:') is rendered as audio.",
                    multiline=True,
                ),
                "seed": INT(0, 0, SEED_MAX,
                            "seed: same seed + same inputs = same video. Changing it makes a "
                            "new (paid) take.",
                            control_after_generate=True),
                "steps": INT(30, 1, 100, "steps: denoising steps; more = more detail, slower."),
                "fps": INT(24, 1, 120, "fps: frames per second of the generated video."),
                "video_cfg_scale": FLOAT(5.0, 0.0, 10.0, 0.1,
                                         "videoCFGScale: how closely the picture follows "
                                         "the prompt."),
                "audio_cfg_scale": FLOAT(4.0, 0.0, 10.0, 0.1,
                                         "audioCFGScale: how closely the sound follows "
                                         "the prompt."),
            },
            "optional": {
                "image": ("IMAGE", {
                    "tooltip": "inputs.image: the first frame (one image). Without it the "
                               "video is made from the prompt alone."
                }),
                "video_negative_prompt": STRING(
                    "videoNegativePrompt: what to keep out of the picture (empty = none).",
                    multiline=True),
                "audio_negative_prompt": STRING(
                    "audioNegativePrompt: what to keep out of the sound (empty = none).",
                    multiline=True),
                "slg_layer": INT(-1, -1, 30, "slgLayer: skip-layer guidance layer "
                                             "(-1 = not sent)."),
                **output_inputs(4),
                "accelerator": (ACCELERATOR_TYPE, {
                    "tooltip": "Optional TeaCache / step-cache settings from a Runware "
                               "Accelerator node."
                }),
                "delivery": DELIVERY_INPUT,
                "reuse_cached_result": REUSE_INPUT,
            },
            "hidden": HIDDEN,
        }

    async def generate(
        self,
        prompt: str,
        seed: int,
        steps: int,
        fps: int,
        video_cfg_scale: float,
        audio_cfg_scale: float,
        image: Any = None,
        video_negative_prompt: str = "",
        audio_negative_prompt: str = "",
        slg_layer: int = -1,
        number_results: int = 1,
        output_format: str = "MP4",
        output_quality: int = 95,
        safety: str = "off",
        accelerator: dict | None = None,
        delivery: dict | None = None,
        reuse_cached_result: bool = True,
        unique_id: str | None = None,
        graph: dict | None = None,
    ) -> dict[str, Any]:
        image_png = None if image is None else image_to_png(image, input_name="image")
        job = prepare_ovi(
            prompt=prompt, seed=seed, steps=steps, fps=fps,
            video_cfg_scale=video_cfg_scale, audio_cfg_scale=audio_cfg_scale,
            image_png=image_png, video_negative_prompt=video_negative_prompt,
            audio_negative_prompt=audio_negative_prompt, slg_layer=slg_layer,
            number_results=number_results, output_format=output_format,
            output_quality=output_quality, safety=safety, accelerator=accelerator,
            delivery=delivery,
        )
        return await run_job(job, node_id=unique_id, label="Ovi", graph=graph,
                             reuse=reuse_cached_result)


class RunwareOviPrompt:
    DESCRIPTION = (
        "Builds a correctly tagged Ovi prompt: the scene, then each line of speech wrapped "
        "in <S>...<E>, then the sound description in <AUDCAP>...<ENDAUDCAP> or, in Ovi's "
        "newer format, on a last line starting with 'Audio:'."
    )
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("prompt",)
    OUTPUT_TOOLTIPS = ("The tagged prompt, for Runware Ovi's prompt input.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "scene": STRING("What we see: people, place, action, camera.", multiline=True),
                "speech": STRING("What is said, one utterance per line (each becomes "
                                 "<S>...<E>). Empty = no speech.", multiline=True),
                "audio_description": STRING(
                    "What we hear besides speech: voice qualities, effects, music, ambience "
                    "(becomes <AUDCAP>...<ENDAUDCAP>). Empty = none.", multiline=True),
            },
            "optional": {
                "audio_format": (list(AUDIO_FORMATS), {
                    "default": AUDIO_FORMATS[0],
                    "tooltip": "How the sound description is written: 'AUDCAP tags' = "
                               "<AUDCAP>...<ENDAUDCAP> (the format in Runware's Ovi "
                               "specification); 'Audio: line' = a last line 'Audio: ...' "
                               "(Ovi's newer prompt format).",
                }),
            },
        }

    def build(self, scene: str, speech: str, audio_description: str,
              audio_format: str = AUDIO_FORMATS[0]) -> tuple[str]:
        check_node_inputs("RunwareOviPrompt", scene=scene, speech=speech,
                          audio_description=audio_description)
        return (build_prompt(scene, speech, audio_description, audio_format),)


class RunwareAccelerator:
    DESCRIPTION = (
        "Speed-ups for Runware Ovi (acceleratorOptions): TeaCache, and caching between a "
        "start and an end step given in steps or in percent of the steps."
    )
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (ACCELERATOR_TYPE,)
    RETURN_NAMES = ("accelerator",)
    OUTPUT_TOOLTIPS = ("Connect to the accelerator input of Runware Ovi.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "tea_cache": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "teaCache: skip redundant transformer computations.",
                }),
                "tea_cache_distance": FLOAT(0.5, 0.0, 1.0, 0.01,
                                            "teaCacheDistance: lower = quality, higher = "
                                            "speed."),
                "cache_unit": (list(CACHE_UNITS), {
                    "default": "steps",
                    "tooltip": "Whether cache_start / cache_end count steps "
                               "(cacheStartStep/cacheEndStep) or percent of the steps "
                               "(cacheStartStepPercentage/cacheEndStepPercentage).",
                }),
                "cache_start": INT(-1, -1, 100, "Step (or percent) where caching starts; "
                                                "-1 = not sent. Must be below cache_end."),
                "cache_end": INT(-1, -1, 100, "Step (or percent) where caching ends; -1 = not "
                                              "sent. In steps it must not exceed Ovi's steps."),
                "cache_max_consecutive_steps": INT(3, 1, 5,
                                                   "cacheMaxConsecutiveSteps: most cached "
                                                   "steps in a row before a fresh one."),
            }
        }

    def build(self, tea_cache: bool, tea_cache_distance: float, cache_unit: str,
              cache_start: int, cache_end: int, cache_max_consecutive_steps: int) -> tuple:
        return (accelerator_options(tea_cache, tea_cache_distance, cache_unit, cache_start,
                                    cache_end, cache_max_consecutive_steps),)
