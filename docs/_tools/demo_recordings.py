"""Record the local engine's results of the demo's sample photos into the package.

``clothseg demo`` replays these on a Python where the local engine (mediapipe) cannot be
installed, so the whole job still runs there, labelled as a replay. Run it again, on a
Python where ``[local]`` installs, whenever the local engine or the sample photos change::

    python docs/_tools/demo_recordings.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from clothseg_tools.demo import RECORDINGS, sample_photos
from clothseg_tools.engines import get_engine
from clothseg_tools.result import segment_with_engine


def main() -> None:
    engine = get_engine("local")
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp)
        staging = Path(tmp + "-recordings")
        for photo in sample_photos(photos):
            result = segment_with_engine(engine, photo, class_type=4, output_type=3)
            folder = staging / photo.relative_to(photos).with_suffix("")
            result.masks.save(folder)
            if len(result.parts):
                result.parts.save(folder / "parts")
            print(folder.relative_to(staging), result.masks.classes, len(result.parts))
        shutil.rmtree(RECORDINGS, ignore_errors=True)
        shutil.copytree(staging, RECORDINGS)
        shutil.rmtree(staging)


if __name__ == "__main__":
    main()
