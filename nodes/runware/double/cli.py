"""Run the Runware test double standalone (for trying the nodes without Runware)."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Sequence

from ..spec import SYNC3_MODEL
from .server import RunwareDouble


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected WIDTHxHEIGHT, e.g. 320x192") from None
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError("width and height must be positive even numbers")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offline_runware.py",
        description="A local, strict Runware REST test double (Ovi and sync-3).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 = any free port")
    parser.add_argument(
        "--key",
        default=os.environ.get("RUNWARE_DOUBLE_KEY", "test-key"),
        help="the API key the double accepts (default: $RUNWARE_DOUBLE_KEY or test-key)",
    )
    parser.add_argument("--job-seconds", type=float, default=5.0)
    parser.add_argument("--storage", default=None, help="directory for uploads and results")
    parser.add_argument("--video-size", type=_size, default=(320, 192), help="Ovi WxH")
    parser.add_argument("--result-keys", choices=("video", "media"), default="video")
    parser.add_argument("--ovi-requires-image", action="store_true")
    parser.add_argument(
        "--sync3-model-ids", default=SYNC3_MODEL,
        help="comma-separated sync-3 model ids this double knows (default: %(default)s; "
        "'sync:3@0' plays a Runware that only knows the docs' id)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    double = RunwareDouble(
        api_key=args.key,
        host=args.host,
        port=args.port,
        job_seconds=args.job_seconds,
        storage_dir=args.storage,
        video_size=args.video_size,
        result_keys=args.result_keys,
        sync3_model_ids=tuple(m.strip() for m in args.sync3_model_ids.split(",") if m.strip()),
    )
    double.ovi_requires_image = args.ovi_requires_image
    double.start()
    print(f"Runware test double listening. Set:\n  RUNWARE_API_URL={double.base_url}", flush=True)
    print(f"  (API key: the value passed with --key; files under {double.storage_dir})")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        double.stop()
    return 0
