"""Draw assets/icon.png, the pack's icon in the Comfy Registry and ComfyUI-Manager.

A play button (video) sending out sound waves (synchronized audio), on a rounded square.
Drawn at 4x and scaled down for smooth edges. Run: python dev/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 400
SCALE = 4
OUT = Path(__file__).resolve().parent.parent / "assets" / "icon.png"


def draw() -> Image.Image:
    s = SIZE * SCALE
    # Vertical gradient, deep blue to violet.
    top, bottom = (28, 36, 92), (118, 46, 160)
    gradient = Image.new("RGB", (1, s))
    for y in range(s):
        t = y / (s - 1)
        color = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        gradient.putpixel((0, y), color)
    background = gradient.resize((s, s))
    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 5, fill=255)
    icon = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    icon.paste(background, (0, 0), mask)

    d = ImageDraw.Draw(icon)
    u = s / 100  # drawing units: the icon is 100 x 100
    # The play triangle.
    d.polygon([(20 * u, 28 * u), (20 * u, 72 * u), (54 * u, 50 * u)], fill=(255, 255, 255))
    # Three sound waves to its right, growing and fading.
    for i, (radius, alpha) in enumerate(((12, 255), (21, 200), (30, 140))):
        cx, cy = 50 * u, 50 * u
        box = (cx - radius * u, cy - radius * u, cx + radius * u, cy + radius * u)
        d.arc(box, start=-40, end=40, fill=(255, 214, 102, alpha), width=round((5 - i) * u))
    return icon.resize((SIZE, SIZE), Image.LANCZOS)


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    draw().save(OUT, optimize=True)
    print(f"wrote {OUT}")
