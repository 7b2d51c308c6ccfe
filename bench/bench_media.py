"""Media bridge benchmarks: ours vs the way ComfyUI does it, on the same files, in one run.

    python bench/bench_media.py [--quick] [--keep DIR]

1. Decode a video to IMAGE + AUDIO: ``decode_video`` vs ComfyUI's
   ``VideoFromFile.get_components()`` on (a) 5 s 720x720 24 fps and (b) 30 s 1280x720
   30 fps H.264 + AAC. Goals: time <= 0.8x, peak extra memory <= 1.25x the output's size.
2. Encode a 10 s 720p IMAGE batch + audio to an upload-ready MP4: ``frames_to_mp4`` vs
   ``VideoFromComponents.save_to``. Goal: time <= 1.0x.
3. Upload a file-backed VIDEO through the real client to the local Runware double:
   bytes sent / file size <= 1.34, peak extra memory <= 1.5x the file size.
4. The Runware Video Frames node (any VIDEO -> IMAGE + AUDIO + fps) vs ComfyUI's
   GetVideoComponents (= ``get_components()``) on the same VIDEO, with the node's options
   off (the same frames) and on (frame_cap / every_nth / max_size, which ComfyUI has no
   equivalent for). Goals: time <= 0.8x, peak extra memory <= 1.25x the output.

    python bench/bench_media.py --only frames     # just case 4 (the README's second table)

The ComfyUI references are reimplemented below from ComfyUI 0.3.64's code
(``comfy_api/latest/_input_impl/video_types.py``), statement for statement. With
``COMFYUI_PATH`` pointing at a checkout whose ``comfy_api`` imports, the real classes are
measured too (case (a) and the encode; case (b)'s reference needs ~2x 10 GB).

Every measurement runs in a fresh child process; peak memory is that child's RSS
high-water mark (``ru_maxrss``) minus the same mark taken after its imports (on Linux the
mark is first reset to the current RSS, so import-time transients do not hide a peak).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from fractions import Fraction
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the pack's one loader, offline_runware.py (removed below)
import offline_runware  # noqa: E402

sys.path.remove(str(REPO))
PACK_NAME = offline_runware.comfyui_module_name(REPO)
sys.path.insert(0, str(REPO / "tests"))  # media_factory: the clip maker the tests use too

GiB = 1 << 30
MiB = 1 << 20


# -- loading the pack the way ComfyUI does (by path, relative imports) -------------------


def pack_module(dotted: str) -> types.ModuleType:
    """A module of the pack, loaded by path the way ComfyUI loads it (the tests' loader)."""
    if PACK_NAME not in sys.modules:
        offline_runware.load_pack(PACK_NAME, comfyui_nodes_stand_in=True)
        # No ComfyUI here: VIDEO values are made with the tests' stand-ins of its classes.
        import video_standins

        video_standins.install(importlib.import_module(f"{PACK_NAME}.nodes.host"))
    return importlib.import_module(f"{PACK_NAME}.{dotted}")


def comfy_classes() -> dict[str, Any] | None:
    """The real ComfyUI video classes, when COMFYUI_PATH's comfy_api imports here."""
    root = os.environ.get("COMFYUI_PATH")
    if not root:
        return None
    sys.path.insert(0, root)
    try:
        from comfy_api.input_impl import VideoFromComponents, VideoFromFile
        from comfy_api.util import VideoComponents
    except Exception as exc:  # e.g. safetensors missing: report, use the reimplementation
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"VideoFromFile": VideoFromFile, "VideoFromComponents": VideoFromComponents,
            "VideoComponents": VideoComponents}


# -- the ComfyUI references, reimplemented from 0.3.64 ----------------------------------


def reference_get_components(path: str) -> tuple[Any, Any, Fraction]:
    """``VideoFromFile.get_components()`` + ``get_components_internal()``, as in ComfyUI."""
    import av
    import numpy as np
    import torch

    with av.open(path, mode="r") as container:
        frames = []
        for frame in container.decode(video=0):
            img = frame.to_ndarray(format="rgb24")  # shape: (H, W, 3)
            img = torch.from_numpy(img) / 255.0  # shape: (H, W, 3)
            frames.append(img)

        images = torch.stack(frames) if len(frames) > 0 else torch.zeros(0, 3, 0, 0)

        video_stream = next(s for s in container.streams if s.type == "video")
        frame_rate = Fraction(video_stream.average_rate) if video_stream and \
            video_stream.average_rate else Fraction(1)

        audio = None
        try:
            container.seek(0)
            for stream in container.streams:
                if stream.type != "audio":
                    continue
                audio_frames = []
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        audio_frames.append(frame.to_ndarray())  # shape: (channels, samples)
                if len(audio_frames) > 0:
                    audio_data = np.concatenate(audio_frames, axis=1)
                    audio_tensor = torch.from_numpy(audio_data).unsqueeze(0)
                    audio = {"waveform": audio_tensor,
                             "sample_rate": int(stream.sample_rate) if stream.sample_rate else 1}
        except StopIteration:
            pass
        return images, audio, frame_rate


def reference_save_to(path: str, images: Any, audio: dict | None, frame_rate: Fraction) -> None:
    """``VideoFromComponents.save_to(path)`` (format/codec AUTO, no metadata), as in ComfyUI."""
    import av

    with av.open(path, mode="w", options={"movflags": "use_metadata_tags"}) as output:
        frame_rate = Fraction(round(frame_rate * 1000), 1000)
        video_stream = output.add_stream("h264", rate=frame_rate)
        video_stream.width = images.shape[2]
        video_stream.height = images.shape[1]
        video_stream.pix_fmt = "yuv420p"

        audio_sample_rate = 1
        audio_stream = None
        if audio:
            audio_sample_rate = int(audio["sample_rate"])
            audio_stream = output.add_stream("aac", rate=audio_sample_rate)

        for frame in images:
            img = (frame * 255).clamp(0, 255).byte().cpu().numpy()  # shape: (H, W, 3)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame = frame.reformat(format="yuv420p")
            packet = video_stream.encode(frame)
            output.mux(packet)

        packet = video_stream.encode(None)
        output.mux(packet)

        if audio_stream and audio:
            waveform = audio["waveform"]
            waveform = waveform[
                :, :, :math.ceil((audio_sample_rate / frame_rate) * images.shape[0])]
            frame = av.AudioFrame.from_ndarray(
                waveform.movedim(2, 1).reshape(1, -1).float().numpy(), format="flt",
                layout="mono" if waveform.shape[1] == 1 else "stereo")
            frame.sample_rate = audio_sample_rate
            frame.pts = 0
            output.mux(audio_stream.encode(frame))
            output.mux(audio_stream.encode(None))


# -- child-process measurements ----------------------------------------------------------


def _reset_peak() -> None:
    """Linux: reset the RSS high-water mark to the current RSS ("5" > clear_refs), so import
    transients above today's RSS do not hide a small peak. Elsewhere: no-op."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _maxrss() -> int:
    """This process's RSS high-water mark in bytes (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def make_frames(n: int, h: int, w: int, fps: float, seconds: float) -> tuple[Any, dict]:
    """A float IMAGE batch that moves (not trivially compressible) + a stereo tone."""
    import torch

    images = torch.empty((n, h, w, 3), dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    xs = torch.linspace(0, 1, w).view(1, w, 1)
    ys = torch.linspace(0, 1, h).view(h, 1, 1)
    texture = torch.rand((h // 8 + 1, w // 8 + 1, 3), generator=gen)
    texture = texture.repeat_interleave(8, 0).repeat_interleave(8, 1)[:h, :w]
    for i in range(n):
        t = i / max(1, n - 1)
        frame = images[i]
        frame[..., 0:1] = (xs + t) % 1.0
        frame[..., 1:2] = ys.expand(h, w, 1)
        frame[..., 2:3] = 0.5 + 0.5 * torch.sin(xs * 12 + ys * 7 + t * 6.28)
        frame.mul_(0.6).add_(0.4 * texture.roll(shifts=i * 3, dims=1))
    samples = int(44100 * seconds)
    tt = torch.arange(samples, dtype=torch.float32) / 44100
    tone = 0.3 * torch.sin(2 * math.pi * 440 * tt)
    audio = {"waveform": torch.stack([tone, tone * 0.5]).unsqueeze(0), "sample_rate": 44100}
    return images, audio


def psnr_first_frames(path: str, images: Any, count: int = 20) -> float:
    import av
    import torch

    errs = []
    with av.open(path) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i >= count:
                break
            got = torch.from_numpy(frame.to_ndarray(format="rgb24")).float() / 255.0
            h, w = images.shape[1], images.shape[2]
            errs.append(float(((got[:h, :w] - images[i]) ** 2).mean()))
    mse = sum(errs) / len(errs)
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def child(task: dict[str, Any]) -> dict[str, Any]:
    import torch  # noqa: F401  (imported before the baseline: ComfyUI has it loaded)

    kind = task["kind"]
    decode = pack_module("nodes.runware.decode")
    encode = pack_module("nodes.runware.encode")
    real = comfy_classes() if task.get("real") else None
    if real is not None and "error" in real:
        return {"error": real["error"]}
    out: dict[str, Any] = {}
    if kind.startswith("decode"):
        path = task["path"]
        _reset_peak()
        base = _maxrss()
        t0 = time.perf_counter()
        if kind == "decode_ours":
            d = decode.decode_video(Path(path))
            images, audio = d.images, d.audio
        elif kind == "decode_ref":
            images, audio, _ = reference_get_components(path)
        elif kind == "decode_real":
            comps = real["VideoFromFile"](path).get_components()
            images, audio = comps.images, comps.audio
        elif kind == "decode_pyav_raw":  # the floor inside Python: decode, no RGB, no tensor
            import av

            with av.open(path) as c:
                c.streams.video[0].thread_type = "AUTO"
                for _ in c.decode(*c.streams):
                    pass
            images = audio = None
        seconds = time.perf_counter() - t0
        peak = _maxrss()
        out_bytes = 0
        if images is not None:
            out_bytes += images.numel() * images.element_size()
            out["shape"] = list(images.shape)
            out["checksum"] = float(images[::max(1, images.shape[0] // 7)].double().sum())
        if audio is not None:
            w = audio["waveform"]
            out_bytes += w.numel() * w.element_size()
            out["audio_shape"] = list(w.shape)
        out.update(seconds=seconds, extra=peak - base, output_bytes=out_bytes)
    elif kind == "frames_node":  # case 4: the Video Frames node on a file-backed VIDEO
        host = pack_module("nodes.host")
        node = pack_module("nodes.video_frames").RunwareVideoFrames()
        video = host.video_from_file(Path(task["path"]))
        _reset_peak()
        base = _maxrss()
        t0 = time.perf_counter()
        images, audio, _fps, count = node.split(video, **task["options"])
        seconds = time.perf_counter() - t0
        peak = _maxrss()
        w = audio["waveform"]
        out.update(seconds=seconds, extra=peak - base, shape=list(images.shape),
                   checksum=float(images[::max(1, images.shape[0] // 7)].double().sum()),
                   output_bytes=images.numel() * images.element_size()
                   + w.numel() * w.element_size())
    elif kind.startswith("encode"):
        fps, secs, h, w = task["fps"], task["seconds"], task["height"], task["width"]
        images, audio = make_frames(round(fps * secs), h, w, fps, secs)
        dest = task["dest"]
        _reset_peak()
        base = _maxrss()
        t0 = time.perf_counter()
        if kind == "encode_ours":
            encode.frames_to_mp4(images, fps, Path(dest), audio)
        elif kind == "encode_ref":
            reference_save_to(dest, images, audio, Fraction(fps))
        elif kind == "encode_real":
            comps = real["VideoComponents"](images=images, audio=audio, frame_rate=Fraction(fps))
            real["VideoFromComponents"](comps).save_to(dest)
        seconds = time.perf_counter() - t0
        peak = _maxrss()
        out.update(seconds=seconds, extra=peak - base, size=os.path.getsize(dest),
                   psnr=psnr_first_frames(dest, images),
                   output_bytes=images.numel() * images.element_size())
    elif kind == "upload":
        client_mod = pack_module("nodes.runware.client")
        config_mod = pack_module("nodes.runware.config")
        host = pack_module("nodes.host")
        video_io = pack_module("nodes.video_io")
        sent = {"bytes": 0, "content_length": 0}
        original = client_mod._base64_json_body

        def counting_body(*args: Any, **kwargs: Any) -> tuple[Any, int]:
            payload, length = original(*args, **kwargs)
            sent["content_length"] += length

            async def counted() -> Any:
                async for piece in payload:
                    sent["bytes"] += len(piece)
                    yield piece

            if isinstance(payload, (bytes, bytearray)):
                sent["bytes"] += len(payload)
                return payload, length
            return counted(), length

        client_mod._base64_json_body = counting_body
        video = host.video_from_file(Path(task["path"]))

        async def run() -> Any:
            cfg = config_mod.ClientConfig(api_url=task["api_url"], api_key="k")
            async with client_mod.RunwareClient(cfg) as client:
                source, mime = video_io.video_upload_source(video, Path(task["work"]))
                out["source_is_original_file"] = str(source) == task["path"]
                return await client.upload_media(source, mime)

        _reset_peak()
        base = _maxrss()
        t0 = time.perf_counter()
        result = asyncio.run(run())
        seconds = time.perf_counter() - t0
        peak = _maxrss()
        out.update(seconds=seconds, extra=peak - base, media_uuid=result.uuid, **sent)
    return out


def run_child(task: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(task)],
        capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


# -- the parent: media, runs, table -------------------------------------------------------


def mem_available() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    import av
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM; Python "
            f"{platform.python_version()}, torch {torch.__version__}, PyAV {av.__version__}")


def ffmpeg_floor(path: Path) -> float | None:
    exe = shutil.which("ffmpeg")
    if not exe:
        return None
    t0 = time.perf_counter()
    subprocess.run([exe, "-v", "error", "-threads", "0", "-i", str(path), "-f", "null", "-"],
                   check=True)
    return time.perf_counter() - t0


def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / MiB:.1f} MiB"


def best(task: dict[str, Any], repeat: int, need: int, label: str,
         skipped: list[str]) -> dict[str, Any] | None:
    """Run a task ``repeat`` times (fresh child each), keep the fastest; skip if RAM is short."""
    if need > 0.9 * mem_available():
        skipped.append(f"{label}: skipped, needs ~{fmt_bytes(need)} and "
                       f"{fmt_bytes(mem_available())} is available")
        return None
    results = [run_child(task) for _ in range(repeat)]
    good = [r for r in results if "error" not in r]
    if not good:
        skipped.append(f"{label}: {results[0]['error']}")
        return None
    fastest = min(good, key=lambda r: r["seconds"])
    fastest["extra"] = max(r["extra"] for r in good)  # memory: the worst of the runs
    return fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true",
                        help="smaller case (b) (10 s instead of 30 s) for a fast check")
    parser.add_argument("--keep", help="make the media in this directory and keep it")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs per small measurement (fastest kept); case (b) runs once")
    parser.add_argument("--only", action="append",
                        choices=("decode", "encode", "upload", "frames"),
                        help="run only these cases (repeatable; default: all)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from media_factory import write_clip

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-media-"))
    work.mkdir(parents=True, exist_ok=True)
    real = comfy_classes()
    use_real = bool(real) and "error" not in real
    notes: list[str] = []
    if real and not use_real:
        notes.append(f"COMFYUI_PATH set but comfy_api does not import ({real['error']}); "
                     "only the reimplemented references are measured")
    b_seconds = 10 if args.quick else 30
    clips = {
        "a": (work / "a_5s_720x720_24fps.mp4", dict(width=720, height=720, fps=24, frames=120)),
        "b": (work / f"b_{b_seconds}s_1280x720_30fps.mp4",
              dict(width=1280, height=720, fps=30, frames=30 * b_seconds)),
        # (b) cut to 10 s: the reference needs ~3x its 10 GiB output at 30 s, more RAM than
        # many machines have, so the same clip at a third of the length is compared too
        "b10": (work / "b10_10s_1280x720_30fps.mp4",
                dict(width=1280, height=720, fps=30, frames=300)),
        # a high-bitrate clip (~100 MB), like a camera file a user uploads
        "up": (work / "upload_10s_1280x720_30fps.mp4",
               dict(width=1280, height=720, fps=30, frames=300, noise=24, crf=14,
                    preset="ultrafast")),
    }
    wanted = set(args.only or ("decode", "encode", "upload", "frames"))
    needed = {"decode": ("a", "b", "b10"), "upload": ("up", "b"), "frames": ("a", "b10")}
    print(f"making test media in {work} ...", flush=True)
    for key, (path, spec) in clips.items():
        if not path.exists() and any(key in needed.get(case, ()) for case in wanted):
            write_clip(path, **{"audio_rate": 44100, "channels": 2, "preset": "veryfast", **spec})

    rows: list[tuple[str, str, str, str, str]] = []
    skipped: list[str] = []
    goals: list[tuple[str, bool]] = []

    # 1. decode
    cases = [("a", "(a) 5 s 720x720 24 fps"), ("b", f"(b) {b_seconds} s 1280x720 30 fps")]
    if not args.quick:
        cases.append(("b10", "(b) cut to 10 s 1280x720 30 fps"))
    for key, label in cases if "decode" in wanted else ():
        path = str(clips[key][0])
        spec = clips[key][1]
        out_bytes = spec["frames"] * spec["height"] * spec["width"] * 3 * 4
        repeat = args.repeat if key != "b" else 1
        ours = best({"kind": "decode_ours", "path": path}, repeat, int(out_bytes * 1.1 + GiB),
                    f"decode {label} ours", skipped)
        # measured: the reference peaks at ~3x its output (frame list + stack + malloc slack)
        ref = best({"kind": "decode_ref", "path": path}, repeat, int(out_bytes * 3.1 + GiB),
                   f"decode {label} reference", skipped)
        real_r = None
        if use_real and key == "a":
            real_r = best({"kind": "decode_real", "path": path, "real": True}, repeat,
                          int(out_bytes * 3.1 + GiB), f"decode {label} real ComfyUI", skipped)
        raw = best({"kind": "decode_pyav_raw", "path": path}, repeat, GiB,
                   f"decode {label} PyAV raw", skipped)
        floor = ffmpeg_floor(Path(path))
        if ours and ref and ref.get("checksum") is not None:
            same = abs(ours["checksum"] - ref["checksum"]) < 1e-6 * max(1.0, abs(ref["checksum"]))
            if not same or ours["shape"] != ref["shape"]:
                notes.append(f"decode {label}: ours and the reference differ in the frames!")
        for name, r in (("reference (ComfyUI get_components, reimpl.)", ref),
                        ("real ComfyUI VideoFromFile.get_components", real_r),
                        ("ours decode_video", ours)):
            if r is None:
                continue
            t_ratio = f"{ours['seconds'] / r['seconds']:.2f}x" if ours and r is not ours else ""
            m = r["extra"] / r["output_bytes"]
            rows.append((f"1{key} decode {label}", name, f"{r['seconds']:.2f} s",
                         f"{fmt_bytes(r['extra'])} = {m:.2f}x output", t_ratio))
        if raw:
            rows.append((f"1{key} decode {label}", "floor: PyAV decode only (no RGB/tensor)",
                         f"{raw['seconds']:.2f} s", "", ""))
        rows.append((f"1{key} decode {label}", "floor: ffmpeg CLI -f null",
                     f"{floor:.2f} s" if floor is not None else "ffmpeg not installed", "", ""))
        if ours and not ref:
            goals.append((f"1{key} decode time <= 0.8x reference: the reference could not run "
                          "here (see notes)", False))
        if ours and ref:
            goals.append((f"1{key} decode time <= 0.8x reference "
                          f"({ours['seconds'] / ref['seconds']:.2f}x)",
                          ours["seconds"] <= 0.8 * ref["seconds"]))
        if ours:
            m = ours["extra"] / ours["output_bytes"]
            goals.append((f"1{key} decode peak extra memory <= 1.25x output ({m:.2f}x)", m <= 1.25))

    # 2. encode
    if "encode" in wanted:
        enc = {"fps": 30, "seconds": 10, "height": 720, "width": 1280}
        need = 1280 * 720 * 3 * 4 * 300 + 2 * GiB
        e_ours = best({"kind": "encode_ours", "dest": str(work / "enc_ours.mp4"), **enc},
                      args.repeat, need, "encode ours", skipped)
        e_ref = best({"kind": "encode_ref", "dest": str(work / "enc_ref.mp4"), **enc},
                     args.repeat, need, "encode reference", skipped)
        e_real = None
        if use_real:
            e_real = best({"kind": "encode_real", "dest": str(work / "enc_real.mp4"), "real": True,
                           **enc}, 1, need, "encode real ComfyUI", skipped)
        for name, r in (("reference (ComfyUI save_to, reimpl.: x264 medium crf 23)", e_ref),
                        ("real ComfyUI VideoFromComponents.save_to", e_real),
                        ("ours frames_to_mp4 (x264 veryfast crf 18)", e_ours)):
            if r is None:
                continue
            t_ratio = f"{e_ours['seconds'] / r['seconds']:.2f}x" \
                if e_ours and r is not e_ours else ""
            rows.append(("2 encode 10 s 1280x720 30 fps + audio", name, f"{r['seconds']:.2f} s",
                          f"file {fmt_bytes(r['size'])}, PSNR {r['psnr']:.1f} dB", t_ratio))
        if e_ours and e_ref:
            ratio = e_ours["seconds"] / e_ref["seconds"]
            goals.append((f"2 encode time <= 1.0x reference ({ratio:.2f}x)", ratio <= 1.0))

    # 3. upload through the real client to the local double
    if "upload" in wanted:
        double_mod = pack_module("nodes.runware.double")
        double = double_mod.RunwareDouble(api_key="k", job_seconds=0.1,
                                          storage_dir=work / "double")
        double.start()
        try:
            for key in ("up", "b"):
                path = clips[key][0]
                size = path.stat().st_size
                r = best({"kind": "upload", "path": str(path), "api_url": double.base_url,
                          "work": str(work / "upload_work")}, 1, 3 * size + GiB,
                         f"upload {path.name}", skipped)
                if r is None:
                    continue
                stored = double.uploads.get(r["media_uuid"], {})
                same = False
                if stored.get("path"):
                    same = hashlib.sha256(Path(stored["path"]).read_bytes()).digest() == \
                        hashlib.sha256(path.read_bytes()).digest()
                ratio = r["bytes"] / size
                m = r["extra"] / size
                rows.append((f"3 upload {path.name} ({fmt_bytes(size)})",
                             "ours: original file, streamed base64"
                             + ("" if r.get("source_is_original_file") else " (NOT the original!)"),
                             f"{r['seconds']:.2f} s",
                             f"{fmt_bytes(r['extra'])} = {m:.2f}x file",
                             f"sent {ratio:.3f}x file" + (", stored == original" if same else
                                                          ", STORED BYTES DIFFER")))
                goals.append((f"3 upload {fmt_bytes(size)}: bytes sent <= 1.34x file "
                              f"({ratio:.3f}x)",
                              ratio <= 1.34 and same))
                goals.append((f"3 upload {fmt_bytes(size)}: peak extra memory <= 1.5x file "
                              f"({m:.2f}x)", m <= 1.5))
        finally:
            double.stop()

    # 4. the Video Frames node vs GetVideoComponents, on the same file-backed VIDEO
    frame_cases = [("a", "(a) 5 s 720x720 24 fps"), ("b10", "(b) 10 s 1280x720 30 fps")]
    for key, label in frame_cases if "frames" in wanted else ():
        path = str(clips[key][0])
        spec = clips[key][1]
        out_bytes = spec["frames"] * spec["height"] * spec["width"] * 3 * 4
        case = f"4{key} VIDEO -> frames {label}"
        ref = best({"kind": "decode_ref", "path": path}, args.repeat, int(out_bytes * 3.1 + GiB),
                   f"{case} GetVideoComponents", skipped)
        real_r = None
        if use_real:
            real_r = best({"kind": "decode_real", "path": path, "real": True}, args.repeat,
                          int(out_bytes * 3.1 + GiB), f"{case} real ComfyUI", skipped)
        ours = best({"kind": "frames_node", "path": path, "options": {}}, args.repeat,
                    int(out_bytes * 1.1 + GiB), f"{case} ours", skipped)
        capped_options = {"frame_cap": 48, "every_nth": 2, "max_size": 512}
        capped = best({"kind": "frames_node", "path": path, "options": capped_options},
                      args.repeat, GiB, f"{case} ours capped", skipped)
        if ours and ref and (ours["shape"] != ref["shape"] or abs(
                ours["checksum"] - ref["checksum"]) > 1e-6 * max(1.0, abs(ref["checksum"]))):
            notes.append(f"{case}: the node's frames differ from GetVideoComponents'!")
        for name, r in (("ComfyUI GetVideoComponents (get_components, reimpl.)", ref),
                        ("real ComfyUI GetVideoComponents", real_r),
                        ("ours Runware Video Frames (all frames)", ours),
                        ("ours Video Frames frame_cap=48 every_nth=2 max_size=512", capped)):
            if r is None:
                continue
            t_ratio = f"{ours['seconds'] / r['seconds']:.2f}x" if ours and r in (ref, real_r) \
                else ""
            m = r["extra"] / r["output_bytes"]
            shape = "x".join(str(x) for x in r["shape"][:3]) if r.get("shape") else ""
            rows.append((case, name, f"{r['seconds']:.2f} s",
                         f"{fmt_bytes(r['extra'])} = {m:.2f}x output ({shape})", t_ratio))
        if ours and ref:
            ratio = ours["seconds"] / ref["seconds"]
            goals.append((f"4{key} Video Frames time <= 0.8x GetVideoComponents ({ratio:.2f}x)",
                          ratio <= 0.8))
        if ours:
            m = ours["extra"] / ours["output_bytes"]
            goals.append((f"4{key} Video Frames peak extra memory <= 1.25x output ({m:.2f}x)",
                          m <= 1.25))

    print()
    print(f"machine: {machine()}")
    if shutil.which("ffmpeg") is None:
        print("ffmpeg CLI: not installed (no ffmpeg floor)")
    headers = ("case", "implementation", "time", "peak extra memory / notes", "ours vs this")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(widths[i]) for i, h in enumerate(headers))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(widths[i]) for i, c in enumerate(r)))
    print()
    for text, ok in goals:
        print(f"[{'met' if ok else 'NOT MET'}] {text}")
    for text in skipped + notes:
        print(f"note: {text}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
