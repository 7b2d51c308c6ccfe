"""One table of every node: id -> (class, display name). Both mappings come from it.

Node ids are public API (saved workflows name them): never rename or remove one.
"""

from __future__ import annotations

from .delivery import RunwareDelivery
from .fetch import RunwareFetchResult
from .ovi import RunwareAccelerator, RunwareOvi, RunwareOviPrompt
from .sync3 import RunwareSync3, RunwareSync3Segment, RunwareSync3Speaker, RunwareSync3TTS
from .video_frames import RunwareVideoFrames

_NODES: list[tuple[str, type, str]] = [
    ("RunwareOvi", RunwareOvi, "Runware Ovi (Text/Image to Video + Audio)"),
    ("RunwareOviPrompt", RunwareOviPrompt, "Runware Ovi Prompt"),
    ("RunwareAccelerator", RunwareAccelerator, "Runware Accelerator"),
    ("RunwareDelivery", RunwareDelivery, "Runware Delivery"),
    ("RunwareSync3", RunwareSync3, "Runware sync-3 Lip Sync"),
    ("RunwareSync3Segment", RunwareSync3Segment, "Runware sync-3 Segment"),
    ("RunwareSync3Speaker", RunwareSync3Speaker, "Runware sync-3 Speaker"),
    ("RunwareSync3TTS", RunwareSync3TTS, "Runware sync-3 TTS"),
    ("RunwareFetchResult", RunwareFetchResult, "Runware Fetch Result (recover a job)"),
    ("RunwareVideoFrames", RunwareVideoFrames, "Runware Video Frames"),
]

NODE_CLASS_MAPPINGS: dict[str, type] = {node_id: cls for node_id, cls, _ in _NODES}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {node_id: name for node_id, _, name in _NODES}
