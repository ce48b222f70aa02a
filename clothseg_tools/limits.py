"""Limits from the service contract (API.md), shared by the client, decoder and server.

Examples
--------
>>> from clothseg_tools import limits
>>> limits.MAX_SIDE, limits.MAX_FILE_BYTES // (1024 * 1024)
(4096, 20)
"""

from __future__ import annotations

__all__ = [
    "INPUT_FORMATS",
    "INPUT_EXTENSIONS",
    "MASK_FORMATS",
    "MAX_FILE_BYTES",
    "MAX_MASK_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "RESULT_TTL_SECONDS",
]

#: Largest upload the service accepts: 20 MB (taken as MiB, the stricter reading is
#: not documented; the server and client agree on this number).
MAX_FILE_BYTES: int = 20 * 1024 * 1024

#: Largest side of an input image, in pixels.
MAX_SIDE: int = 4096

#: Largest number of pixels of an input image or a returned mask; decoding refuses
#: anything larger before allocating it (decompression-bomb guard).
MAX_PIXELS: int = MAX_SIDE * MAX_SIDE

#: Largest mask download; a 4096 x 4096 PNG of noise stays far below this.
MAX_MASK_BYTES: int = 64 * 1024 * 1024

#: How long result links live.
RESULT_TTL_SECONDS: int = 3600

#: Pillow format names of the input formats API.md lists (jpg, jpeg, jfif -> JPEG;
#: bmp, bitmap -> BMP; tiff, tif, lzw -> TIFF; raw/rgb -> SGI ``.rgb``).
INPUT_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "BMP", "WEBP", "TIFF", "SGI"})

#: Pillow formats a mask may come in (API.md sends PNG; the rest are read as well).
MASK_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")

#: File extensions a folder scan treats as input images.
INPUT_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jfif",
        ".png",
        ".bmp",
        ".bitmap",
        ".webp",
        ".tif",
        ".tiff",
        ".lzw",
        ".rgb",
        ".raw",
    }
)
