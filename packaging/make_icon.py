"""Draws oodscope's icon (packaging/oodscope.svg and packaging/oodscope.png, 256 px): two score
histograms, ID (blue) and OOD (orange), on the dark panel, split by the amber threshold δ line.

Run: python packaging/make_icon.py  (needs Pillow; the outputs are committed)."""

import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
BG = "#1d232c"
ID = (79, 155, 234)
OOD = (240, 124, 60)
DELTA = "#ffc53d"
AXIS = "#8a94a3"


def bars(centre, spread, height, first, last, count):
    """Histogram bars [(x0, x1, h)] of a Gaussian bump over [first, last]."""
    width = (last - first) / count
    out = []
    for i in range(count):
        x = first + (i + 0.5) * width
        h = height * math.exp(-0.5 * ((x - centre) / spread) ** 2)
        if h > 3:
            out.append((first + i * width, first + (i + 1) * width, h))
    return out


BASE = 200  # y of the axis
OOD_BARS = bars(92, 26, 120, 30, 226, 14)
ID_BARS = bars(160, 22, 150, 30, 226, 14)
DELTA_X = 126


def svg():
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}">',
        f'<rect x="8" y="8" width="240" height="240" rx="40" fill="{BG}"/>',
    ]
    for colour, bs in ((OOD, OOD_BARS), (ID, ID_BARS)):
        r, g, b = colour
        for x0, x1, h in bs:
            parts.append(
                f'<rect x="{x0 + 1:.1f}" y="{BASE - h:.1f}" width="{x1 - x0 - 2:.1f}" height="{h:.1f}" '
                f'fill="rgb({r},{g},{b})" fill-opacity="0.8"/>'
            )
    parts.append(f'<rect x="28" y="{BASE}" width="200" height="5" rx="2" fill="{AXIS}"/>')
    parts.append(f'<rect x="{DELTA_X - 4}" y="36" width="8" height="{BASE - 36 + 12}" rx="3" fill="{DELTA}"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def png():
    k = 4  # drawn 4x larger, then downsampled: antialiased edges
    big = Image.new("RGBA", (SIZE * k, SIZE * k), (0, 0, 0, 0))
    d = ImageDraw.Draw(big)
    d.rounded_rectangle([8 * k, 8 * k, 248 * k, 248 * k], radius=40 * k, fill=BG)
    for colour, bs in ((OOD, OOD_BARS), (ID, ID_BARS)):
        layer = Image.new("RGBA", big.size, (0, 0, 0, 0))
        ld = ImageDraw.Draw(layer)
        for x0, x1, h in bs:
            ld.rectangle([(x0 + 1) * k, (BASE - h) * k, (x1 - 1) * k, BASE * k], fill=colour + (204,))
        big = Image.alpha_composite(big, layer)
        d = ImageDraw.Draw(big)
    d.rounded_rectangle([28 * k, BASE * k, 228 * k, (BASE + 5) * k], radius=2 * k, fill=AXIS)
    d.rounded_rectangle([(DELTA_X - 4) * k, 36 * k, (DELTA_X + 4) * k, (BASE + 12) * k], radius=3 * k, fill=DELTA)
    return big.resize((SIZE, SIZE), Image.LANCZOS)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    (out / "oodscope.svg").write_text(svg())
    png().save(out / "oodscope.png", optimize=True)
    print(f"wrote {out / 'oodscope.svg'} and {out / 'oodscope.png'}")


if __name__ == "__main__":
    main()
