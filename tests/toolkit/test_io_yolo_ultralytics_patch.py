"""A regression: ultralytics patches PIL.Image.open when imported, which must not change our errors."""

from __future__ import annotations

import pytest

from toolkit.errors import InputError
from toolkit.io.yolo import read_yolo

GOOD = "0 0.5 0.5 0.5 0.5 " + " ".join(["0.5 0.5 2"] * 19)


def test_unreadable_image_is_input_error_after_ultralytics_import(tmp_path):
    pytest.importorskip("ultralytics")
    import ultralytics.utils.patches  # noqa: F401  (installs the Image.open patch)

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"not an image at all")
    (tmp_path / "labels" / "a.txt").write_text(GOOD + "\n")
    with pytest.raises(InputError, match="a.jpg"):
        read_yolo(tmp_path)
