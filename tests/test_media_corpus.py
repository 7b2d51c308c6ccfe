"""Everyday media (tests/media_corpus.py) through the sync-3 node, against the double.

For every item: what the double received must decode and hold the same pictures
(frames, display size, duration) and sound (channels, rate, duration); files cut short
are refused before anything is uploaded; re-encoded inputs are the same bytes on every run
(also in fresh processes), so they are never paid for twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import runpy
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import PACK, REPO_ROOT, pack_module
from media_corpus import AUDIO_NAMES, MAKERS, Unavailable, make
from media_factory import probe, write_mp4

media = pack_module("nodes.runware.media")
decode = pack_module("nodes.runware.decode")
encode = pack_module("nodes.runware.encode")
video_io = pack_module("nodes.video_io")
video_input = pack_module("nodes.runware.video_input")
host = pack_module("nodes.host")
tasks = pack_module("nodes.runware.tasks")
RunwareSync3 = PACK.NODE_CLASS_MAPPINGS["RunwareSync3"]
RunwareOvi = PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]
Segment = PACK.NODE_CLASS_MAPPINGS["RunwareSync3Segment"]
Speaker = PACK.NODE_CLASS_MAPPINGS["RunwareSync3Speaker"]

AUDIOS = sorted(AUDIO_NAMES)
VIDEOS = [n for n in MAKERS if n not in AUDIO_NAMES]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def item_of(name: str, directory: Path):
    try:
        return make(name, directory)
    except Unavailable as exc:
        pytest.skip(f"{name}: {exc}")


def tone(seconds=1.0, rate=16000, channels=1):
    t = torch.arange(int(seconds * rate)) / rate
    return {"waveform": (0.2 * torch.sin(2 * torch.pi * 330 * t)).repeat(1, channels, 1),
            "sample_rate": rate}


def lipsync(**kwargs):
    kwargs.setdefault("sync_mode", "cut_off")
    return asyncio.run(RunwareSync3().lipsync(**kwargs))["result"]


def uploaded(env, field: str) -> Path:
    sent = env.accepted_submissions()[-1]
    return Path(env.uploads[sent["inputs"][field]]["path"])


def load_audio(path: Path) -> dict:
    """What ComfyUI's Load Audio hands over: the file's samples, rate and channels."""
    wave, rate, _ = decode.decode_audio_track(path)
    return {"waveform": wave.unsqueeze(0), "sample_rate": rate}


# -- every video item, through the node ------------------------------------------------


@pytest.mark.parametrize("name", VIDEOS)
def test_corpus_video_through_the_node(env, corpus_dir, name):
    item = item_of(name, corpus_dir / name)
    video = host.video_from_file(item.path)
    if item.damaged:
        with pytest.raises(media.MediaError) as exc:
            lipsync(video=video, audio=tone())
        text = str(exc.value)
        assert exc.value.parameter == "video" and text.startswith("video: ")
        assert item.path.name in text and "nothing was uploaded" in text.lower()
        assert "media" not in text.replace("Runware", "")  # the node input, not an API field
        assert env.count("mediaStorage") == 0 and env.accepted_submissions() == []
        return
    lipsync(video=video, audio=tone())
    sent = uploaded(env, "video")
    if item.as_is:
        assert sent.read_bytes() == item.path.read_bytes()
    else:
        assert sent.suffix in (".mp4", ".mov", ".webm")
    got = probe(sent)  # decodes every frame and sample
    scan = video_input.scan_video(sent)  # display size, duration
    assert got["frames"] == item.frames
    assert (scan.width, scan.height) == (item.width, item.height)
    assert scan.duration == pytest.approx(item.seconds, abs=0.12)
    if item.fps:
        assert scan.fps == pytest.approx(item.fps, rel=0.01)
    if item.channels:
        assert (got["channels"], got["sample_rate"]) == (item.channels, item.sample_rate)
        assert got["audio_seconds"] == pytest.approx(item.seconds, abs=0.15)
    else:
        assert "channels" not in got


@pytest.mark.parametrize("name", AUDIOS)
def test_corpus_audio_through_the_node(env, corpus_dir, tmp_path, name):
    item = item_of(name, corpus_dir / name)
    clip = write_mp4(tmp_path / "face.mp4", width=64, height=48, fps=12, frames=12)
    lipsync(video=host.video_from_file(clip), audio=load_audio(item.path))
    got = probe(uploaded(env, "audio"))
    assert (got["channels"], got["sample_rate"]) == (item.channels, item.sample_rate)
    assert got["audio_seconds"] == pytest.approx(item.seconds, abs=0.05)


# -- what the corpus items exercise, checked in detail -----------------------------------


def test_mkv_remux_keeps_every_packet(corpus_dir, tmp_path):
    """OBS's MKV: the same video packets (no re-encode), the first keyframe included."""
    item = item_of("obs_screen_mkv", corpus_dir / "obs_screen_mkv")
    out, mime = video_io.video_upload_source(host.video_from_file(item.path), tmp_path)
    assert mime == "video/mp4"

    def packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(video=0) if p.size]

    assert packets(out) == packets(item.path)
    with av.open(str(out)) as c:
        first = next(c.decode(video=0))
    with av.open(str(item.path)) as c:
        original = next(c.decode(video=0))
    assert np.array_equal(first.to_ndarray(format="rgb24"), original.to_ndarray(format="rgb24"))


def test_remux_copies_what_the_container_holds(corpus_dir, tmp_path):
    """An AVI's MPEG-4 video and MP3 audio both go into the MP4 untouched."""
    item = item_of("avi_mpeg4_mp3", corpus_dir / "avi_mpeg4_mp3")
    out, mime = video_io.video_upload_source(item.path, tmp_path)
    assert mime == "video/mp4"
    for kind in ("video", "audio"):
        with av.open(str(out)) as c, av.open(str(item.path)) as o:
            assert [bytes(p) for p in c.demux(**{kind: 0}) if p.size] == \
                [bytes(p) for p in o.demux(**{kind: 0}) if p.size]


def test_surround_track_in_a_video_is_downmixed(corpus_dir, tmp_path):
    item = item_of("mp4_5.1", corpus_dir / "mp4_5.1")
    out, mime = video_io.video_upload_source(item.path, tmp_path)
    assert mime == "video/mp4" and Path(out) != item.path
    wave, rate, names = decode.decode_audio_track(Path(out))
    assert wave.shape[0] == 2 and names == ["FL", "FR"] and rate == 48000
    with av.open(str(out)) as c, av.open(str(item.path)) as o:  # the pictures: copied
        assert [bytes(p) for p in c.demux(video=0) if p.size] == \
            [bytes(p) for p in o.demux(video=0) if p.size]


def test_downmix_rule():
    """ITU-R BS.775: Lo = L + .7071 C + .7071 Ls, Ro = R + .7071 C + .7071 Rs, LFE dropped."""
    # 5.1 in FFmpeg's order: FL FR FC LFE BL BR, one unit impulse per channel
    wave = torch.eye(6) * 0.1
    mixed = encode.downmix_to_stereo(wave)
    expected = torch.tensor([[1, 0, 0.7071, 0, 0.7071, 0], [0, 1, 0.7071, 0, 0, 0.7071]]) * 0.1
    assert torch.allclose(mixed, expected, atol=1e-6)
    # side surrounds (5.1(side)) mix the same way, by name
    side = encode.downmix_to_stereo(wave, ["FL", "FR", "FC", "LFE", "SL", "SR"])
    assert torch.allclose(side, expected, atol=1e-6)
    # a loud mix is scaled to peak at 1.0, never clipped
    loud = encode.downmix_to_stereo(torch.full((6, 4), 0.9))
    assert float(loud.abs().max()) == pytest.approx(1.0)
    assert torch.allclose(loud[0], loud[1])
    # more than 8 channels (no standard order): odd to the left, even to the right
    many = encode.downmix_to_stereo(torch.arange(10.0).view(10, 1) / 100)
    assert many[:, 0].tolist() == pytest.approx([0.04, 0.05])
    assert encode.downmix_to_stereo(torch.ones(2, 3)).shape == (2, 3)  # stereo untouched


def test_ten_channel_audio_is_accepted(env, tmp_path):
    clip = write_mp4(tmp_path / "face.mp4", width=64, height=48, fps=12, frames=12)
    t = torch.arange(16000) / 16000
    wave = torch.stack([0.05 * torch.sin(2 * torch.pi * (200 + 20 * c) * t) for c in range(10)])
    lipsync(video=host.video_from_file(clip), audio={"waveform": wave.unsqueeze(0),
                                                     "sample_rate": 16000})
    assert probe(uploaded(env, "audio"))["channels"] == 2


# -- VideoHelperSuite's lazy AUDIO -------------------------------------------------------


class LazyAudioMap(Mapping):
    """Like VHS_LoadVideo's audio output: a Mapping that decodes on first access."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loads = 0
        self._dict: dict | None = None

    def _load(self) -> dict:
        if self._dict is None:
            self.loads += 1
            self._dict = load_audio(self.path)
        return self._dict

    def __getitem__(self, key):
        return self._load()[key]

    def __iter__(self):
        return iter(self._load())

    def __len__(self):
        return len(self._load())


def test_lazy_mapping_audio_is_accepted_everywhere(env, corpus_dir, tmp_path):
    item = item_of("wav_5.1", corpus_dir / "wav_5.1")
    clip = write_mp4(tmp_path / "face.mp4", width=64, height=48, fps=12, frames=24)
    lazy = LazyAudioMap(item.path)
    lipsync(video=host.video_from_file(clip), audio=lazy)
    assert lazy.loads == 1 and probe(uploaded(env, "audio"))["channels"] == 2
    chain = Segment().build(LazyAudioMap(item.path), 0.0, 0.9)[0]
    chain = Segment().build(LazyAudioMap(item.path), 1.0, 1.9, segments=chain)[0]
    lipsync(video=host.video_from_file(clip), segments=chain)
    sent = env.accepted_submissions()[-1]
    assert len(sent["settings"]["segments"]) == 2
    for seg in sent["settings"]["segments"]:
        assert env.uploads[seg["audio"]]["channels"] == 2
    with pytest.raises(pack_module("nodes.runware.errors").ValidationError) as exc:
        Segment().build({"waveform": torch.zeros(1, 1, 10)}, 0.0, 1.0)  # no sample_rate
    assert exc.value.parameter == "audio"


def test_lazy_audio_of_a_silent_clip_is_refused_by_name(env, corpus_dir, tmp_path):
    """VHS_LoadVideo on a clip without sound: its lazy audio raises when loaded. sync-3 and
    Segment say the connected audio could not be read (not "connect an AUDIO output"),
    naming the input, before anything is uploaded."""
    clip = write_mp4(tmp_path / "face.mp4", width=64, height=48, fps=12, frames=24)

    def vhs_get_audio(path: Path) -> dict:
        raise Exception(f"VHS failed to extract audio from {path.name}:\nOutput file does "
                        "not contain any stream")

    silent = LazyAudioMap(clip)
    silent._load = lambda: vhs_get_audio(clip)  # type: ignore[method-assign]
    errors = pack_module("nodes.runware.errors")
    for run in (lambda: lipsync(video=host.video_from_file(clip), audio=silent),
                lambda: Segment().build(silent, 0.0, 0.9)):
        with pytest.raises(errors.ValidationError) as exc:
            run()
        text = str(exc.value)
        assert exc.value.parameter == "audio"
        assert text.startswith("audio: the connected AUDIO could not be read")
        assert "VHS failed to extract audio from face.mp4" in text and "no audio track" in text
        assert "Connect an AUDIO output" not in text
    assert env.count("mediaStorage") == 0 and env.accepted_submissions() == []


# -- rotated phone clips ------------------------------------------------------------------


def test_rotated_clip_reports_and_decodes_display_size(env, corpus_dir):
    item = item_of("phone_portrait", corpus_dir / "phone_portrait")
    info = decode.probe_video(item.path)
    assert (info.width, info.height, info.rotation) == (64, 96, 90)
    decoded = decode.decode_video(item.path, want_audio=False)
    assert decoded.images.shape == (20, 96, 64, 3)
    with av.open(str(item.path)) as c:  # the stored frames, turned as players do
        raw = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    upright = torch.from_numpy(np.rot90(raw, 1, axes=(1, 2)).copy()) / 255.0
    assert torch.equal(decoded.images, upright)
    # the white marker (top-left of the stored frame) is bottom-left when shown upright
    assert float(decoded.images[0, -4:, :4].mean()) > 0.9
    assert float(decoded.images[0, :4, :4, 1].mean()) < 0.5
    # sync-3's checks use what the user sees: the facts are the portrait frame's ...
    _, _, facts = video_io.sync3_video_upload(host.video_from_file(item.path), None, 24.0,
                                              corpus_dir / "facts")
    assert (facts.width, facts.height, facts.frame_count) == (64, 96, 20)
    # ... so a point beyond its 64 px width is refused before anything is uploaded
    with pytest.raises(pack_module("nodes.runware.errors").ValidationError, match="64x96"):
        lipsync(video=host.video_from_file(item.path), audio=tone(),
                speaker=Speaker().build("point", 90.0, 30.0, 0, "")[0])
    assert env.count("mediaStorage") == 0


# -- re-encoded inputs fingerprint stably -------------------------------------------------

CHILD = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from conftest import pack_module
    import torch
    encode = pack_module("nodes.runware.encode")
    video_io = pack_module("nodes.video_io")
    host = pack_module("nodes.host")
    out = {}
    work = Path(sys.argv[2])
    for name in sys.argv[3:]:
        src, _ = video_io.video_upload_source(host.video_from_file(Path(name)),
                                              work / Path(name).stem)
        out[Path(name).name] = hashlib.sha256(Path(src).read_bytes()).hexdigest()
    g = torch.Generator().manual_seed(7)
    frames = torch.rand(9, 47, 67, 3, generator=g)
    t = torch.arange(22050) / 22050
    audio = {"waveform": torch.stack([torch.sin(2 * torch.pi * 300 * t)] * 6).unsqueeze(0),
             "sample_rate": 22050}
    mp4 = encode.frames_to_mp4(frames, 9, work / "frames.mp4", audio)
    out["frames"] = hashlib.sha256(mp4.read_bytes()).hexdigest()
    flac = encode.audio_to_file(audio, work / "audio.flac")
    out["flac"] = hashlib.sha256(flac.read_bytes()).hexdigest()
    print(json.dumps(out))
    """
)


def test_reencoded_inputs_are_bit_exact_across_runs_and_processes(corpus_dir, tmp_path):
    names = ["gif", "avi_mjpeg_pcm", "obs_mkv_5.1", "obs_screen_mkv", "vp9_opus_mkv"]
    paths = [str(item_of(n, corpus_dir / n).path) for n in names]
    runs = []
    for i in range(3):  # two fresh processes, then this one (warm, other allocations)
        work = tmp_path / f"run{i}"
        if i < 2:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(REPO_ROOT / "tests"),
                                   str(work), *paths], capture_output=True, text=True,
                                  timeout=300)
            assert proc.returncode == 0, proc.stderr[-2000:]
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            script = tmp_path / "child.py"
            script.write_text(CHILD)
            argv = sys.argv
            try:
                sys.argv = ["child", str(REPO_ROOT / "tests"), str(work), *paths]
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    runpy.run_path(str(script), run_name="child")
            finally:
                sys.argv = argv
            runs.append(json.loads(buf.getvalue().strip().splitlines()[-1]))
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0]) == len(names) + 2


def test_a_gif_is_paid_for_once(env, corpus_dir):
    """A changed graph re-runs the node: the GIF is converted again, to the same bytes,
    so the job's fingerprint matches and the cached result is used (no new submission)."""
    item = item_of("gif", corpus_dir / "gif")
    first = lipsync(video=host.video_from_file(item.path), audio=tone())
    digest = hashlib.sha256(uploaded(env, "video").read_bytes()).hexdigest()
    second = lipsync(video=host.video_from_file(item.path), audio=tone())
    assert len(env.accepted_submissions()) == 1
    assert json.loads(second[4][0])["cached"] is True
    assert json.loads(first[4][0])["taskUUID"] == json.loads(second[4][0])["taskUUID"]
    assert hashlib.sha256(uploaded(env, "video").read_bytes()).hexdigest() == digest


OVI_PROMPT = "A robot says <S>All systems go<E>. <AUDCAP>whirring motors<ENDAUDCAP>"


def _refusal(task_type: str, code: str, api_field: str) -> dict:
    """Runware's answer to an upload it refuses: the API's field, not the node input."""
    return {"errors": [{"code": code, "message": f"Invalid value for {api_field}",
                        "parameter": api_field, "taskType": task_type}]}


@pytest.mark.parametrize("field", ["video", "audio", "image"])
def test_a_refused_upload_names_the_node_input(env, tmp_path, field):
    """Runware refusing an upload (its API field "media" / "image") -> the error names the
    node input the file came from: sync-3's video or audio, Ovi's image; nothing is
    submitted."""
    if field == "image":
        env.answer_next(400, _refusal("imageUpload", "invalidImage", "image"),
                        task_type="imageUpload")
        run = lambda: asyncio.run(RunwareOvi().generate(  # noqa: E731
            prompt=OVI_PROMPT, seed=3, steps=30, fps=12, video_cfg_scale=5.0,
            audio_cfg_scale=4.0, image=torch.rand(1, 32, 32, 3)))
    else:
        clip = write_mp4(tmp_path / "face.mp4", width=64, height=48, fps=12, frames=12)
        if field == "audio":  # the video is uploaded (and remembered) first: run once
            lipsync(video=host.video_from_file(clip), audio=tone(0.5))
        env.answer_next(400, _refusal("mediaStorage", "invalidMedia", "media"),
                        task_type="mediaStorage")
        run = lambda: lipsync(video=host.video_from_file(clip), audio=tone())  # noqa: E731
    before = len(env.accepted_submissions())
    with pytest.raises(pack_module("nodes.runware.errors").ValidationError) as exc:
        run()
    text = str(exc.value)
    assert exc.value.parameter == field and text.startswith(f"{field}: Runware refused")
    assert "Invalid value for" in text  # Runware's reason is kept ...
    assert "parameter media" not in text  # ... but not its field name
    assert f"connected to {field}" in text and "nothing was paid for" in text
    assert len(env.accepted_submissions()) == before
