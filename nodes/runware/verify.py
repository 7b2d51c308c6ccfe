"""Is a downloaded file the paid video? Checked before it is cached as good.

A proxy's HTML page, a JSON error, an image, a cut-off file: none of them may become a
cache entry (a re-queue would then serve it for ever). The check opens the file as the
expected container, needs a video stream, and reads every packet of it (no decoding, so
it costs little) plus the first frame.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DownloadError

# PyAV's demuxer names per family (mp4 and mov share one demuxer).
FAMILIES = {"mp4": "mov,mp4,m4a,3gp,3g2,mj2", "mov": "mov,mp4,m4a,3gp,3g2,mj2",
            "webm": "matroska,webm"}


def sniff(head: bytes) -> str | None:
    """What a file that is clearly not a video is, from its first bytes."""
    text = head.lstrip()[:64].lower()
    if not head:
        return "an empty file"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in \
            head[:1024].lower():
        return "an HTML page"
    if text.startswith((b"<?xml", b"<error")):
        return "an XML document"
    if text.startswith((b"{", b"[")):
        return "a JSON document"
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff"):
        return "an image"
    return None


def check_video(path: Path, expected: str, task_uuid: str | None) -> str:
    """Raise :class:`DownloadError` (not retryable) naming what arrived, unless ``path``
    is a readable video. Returns the extension the file really has (mp4 / webm / mov)."""
    import av  # ComfyUI ships PyAV; imported here so the core loads without it

    def bad(what: str) -> DownloadError:
        err = DownloadError(
            f"The downloaded result is not a video: {what} arrived instead "
            f"({path.stat().st_size if path.exists() else 0} bytes)",
            task_uuid=task_uuid,
            hint="It was not kept as the result. Queue again to download it again "
            "(no new charge), or recover it with Runware Fetch Result.",
        )
        err.retryable = False
        return err

    with open(path, "rb") as fh:
        head = fh.read(1024)
    what = sniff(head)
    if what is not None:
        raise bad(what)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            family = container.format.name
            if family not in FAMILIES.values():
                raise bad(f"a {family} file")
            if not container.streams.video:
                raise bad("a file without a video stream")
            stream = container.streams.video[0]
            packets = 0
            for packet in container.demux(stream):
                if packet.size:
                    packets += 1
            expected_frames = stream.frames or 0
            if packets == 0 or (expected_frames and packets < expected_frames):
                raise bad(f"a truncated file ({packets} of {expected_frames or '?'} frames)")
            container.seek(0)
            for _frame in container.decode(stream):
                break
            else:
                raise bad("a video whose frames cannot be decoded")
    except DownloadError:
        raise
    except Exception as exc:  # PyAV raises its own error types for damaged files
        raise bad(f"a damaged or truncated file ({type(exc).__name__})") from None
    if FAMILIES.get(expected) == family:
        return expected
    return "webm" if family == FAMILIES["webm"] else "mp4"
