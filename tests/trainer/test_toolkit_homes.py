"""Code the trainer moved home to toolkit: ``toolkit.taxonomy`` and ``toolkit.media``.

(Kept beside the trainer tests that exercised it before the move.)
"""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import InputError
from toolkit.media import iter_pixels, read_image, row_pixels
from toolkit.taxonomy import Taxonomy


def test_taxonomy_round_trip_and_errors(tmp_path):
    doc = {
        "stances": [
            {"name": "a_hi", "family": "a", "chamber": "hi"},
            {"name": "b_hi", "family": "b", "chamber": "hi"},
        ]
    }
    tax = Taxonomy.from_dict(doc)
    assert tax.hierarchical and tax.family_of.tolist() == [0, 1] and tax.chambers == ["hi"]
    assert Taxonomy.from_dict(tax.to_dict()).classes == ["a_hi", "b_hi"]
    assert "classes=2" in repr(tax)
    p = tmp_path / "taxonomy.json"
    p.write_text("{nope")
    with pytest.raises(InputError, match="valid JSON"):
        Taxonomy.load(p)
    with pytest.raises(FileNotFoundError):
        Taxonomy.load(tmp_path / "missing.json")


def test_media_reads_each_picture_once_and_names_missing_files(tmp_path, toy_dataset):
    ds = toy_dataset(tmp_path, n_subjects=2, per_class=1, image_size=48)
    rows = np.array([3, 0, 3, 1])  # a repeated row shares one read
    seen = []
    for pos, rgb in iter_pixels(ds, rows):
        assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
        seen.append(sorted(pos.tolist()))
    assert sorted(seen) == [[0, 2], [1], [3]]
    one = row_pixels(ds, 0)
    np.testing.assert_array_equal(one, read_image(ds.image_path(ds.images["file_name"][0])))
    # the toy stick is drawn as BGR (200, 140, 60): read back as RGB, blue > red
    stick = one.reshape(-1, 3)[(one.reshape(-1, 3) != 90).any(1)]
    assert len(stick) and (stick[:, 2] > stick[:, 0]).all()
    (tmp_path / ds.images["file_name"][1]).unlink()
    with pytest.raises(FileNotFoundError, match="needs them"):
        list(iter_pixels(ds, np.array([1]), hint="the test needs them"))
