"""Make docs/images/demo.jpg, the picture in README.md and on the docs' home page.

It runs ``clothseg demo`` (the library's :func:`clothseg_tools.demo.run_demo`) into a
temporary folder, or reads an existing demo folder, and puts three of its pictures of
the astronaut side by side: the photo, the overlay of the classes and the garment
cutout (on a light checkerboard, so transparency shows). Run it again when the engine
or the demo changes::

    python docs/_tools/readme_image.py                 # runs the demo
    python docs/_tools/readme_image.py clothseg-demo   # reuses a demo folder
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from clothseg_tools.demo import run_demo

OUT = Path(__file__).resolve().parents[1] / "images" / "demo.jpg"
PANEL = 300  # pixels per picture; three side by side stay well under 300 KB as JPEG
SAMPLE = "astronaut"


def checkerboard(height: int, width: int, cell: int = 16) -> npt.NDArray[np.uint8]:
    """A light grey checkerboard, the usual backdrop that shows transparency."""
    yy, xx = np.mgrid[:height, :width]
    board = np.where(((yy // cell + xx // cell) % 2) == 0, 255, 228).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def on_checkerboard(rgba: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Composite a straight-alpha RGBA image over the checkerboard."""
    alpha = rgba[..., 3:].astype(np.uint16)
    board = checkerboard(*rgba.shape[:2]).astype(np.uint16)
    out = (rgba[..., :3] * alpha + board * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def compose(demo: Path) -> Image.Image:
    """Photo, overlay and cutout of the demo's astronaut, side by side."""
    folder = demo / "results" / SAMPLE
    photo = np.asarray(Image.open(demo / "photos" / f"{SAMPLE}.png").convert("RGB"))
    overlay = np.asarray(Image.open(folder / "overlay.png").convert("RGB"))
    cutout = on_checkerboard(np.asarray(Image.open(folder / "cutout.png").convert("RGBA")))
    row = np.hstack([photo, overlay, cutout])
    height = PANEL
    width = round(row.shape[1] * height / row.shape[0])
    return Image.fromarray(row).resize((width, height), Image.Resampling.LANCZOS)


def main(argv: list[str]) -> None:
    if argv:
        picture = compose(Path(argv[0]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_demo(Path(tmp) / "demo")
            if result.exit_code:
                raise SystemExit(f"the demo failed (exit code {result.exit_code})")
            picture = compose(Path(tmp) / "demo")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    picture.save(OUT, format="JPEG", quality=85, optimize=True, progressive=True)
    print(f"{OUT}: {picture.width} x {picture.height}, {OUT.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
