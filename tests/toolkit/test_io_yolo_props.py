"""Property tests: mutated label files either import or raise InputError, never anything else."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.errors import InputError
from toolkit.io.yolo import read_yolo

GOOD_19 = "0 0.5 0.5 0.4 0.8 " + " ".join(
    f"{0.3 + i * 0.02:.4f} {0.2 + i * 0.03:.4f} 2" for i in range(19)
)
GOOD_17_CONF = (
    "0 0.5 0.5 0.4 0.8 "
    + " ".join(f"{0.3 + i * 0.02:.4f} {0.2 + i * 0.03:.4f} {0.1 + i * 0.05:.3f}" for i in range(17))
    + " 0.91 3"
)
GOOD_19_CONF = "0 0.5 0.5 0.4 0.8 " + " ".join(
    f"{0.3 + i * 0.02:.4f} {0.2 + i * 0.03:.4f} {0.1 + i * 0.04:.3f}" for i in range(19)
)
STICK = "1 0.5 0.3 0.1 0.2 0.5 0.4 2 0.5 0.2 2"

TOKENS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-0.1, 2.1).map(lambda v: f"{v:.6f}"),
    st.integers(-3, 5).map(str),
    st.sampled_from(
        [
            "",
            "nan",
            "-inf",
            "2.000000",
            "1e400",
            "0x10",
            "abc",
            ",",
            "1,5",
            "\t",
            "٣",
            "\u00a0",
            "0.5.1",
        ]
    ),
)


@st.composite
def mutated_file(draw) -> bytes:
    lines = [
        draw(st.sampled_from([GOOD_19, GOOD_17_CONF, STICK]))
        for _ in range(draw(st.integers(0, 3)))
    ]
    out = []
    for ln in lines:
        toks = ln.split()
        for _ in range(draw(st.integers(0, 3))):
            op = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "dup"]))
            if op == "replace" and toks:
                toks[draw(st.integers(0, len(toks) - 1))] = draw(TOKENS)
            elif op == "delete" and toks:
                del toks[draw(st.integers(0, len(toks) - 1))]
            elif op == "insert":
                toks.insert(draw(st.integers(0, len(toks))), draw(TOKENS))
            elif op == "truncate":
                toks = toks[: draw(st.integers(0, len(toks)))]
            elif op == "dup":
                toks = toks + toks
        out.append(" ".join(toks))
    data = "\n".join(out).encode()
    if draw(st.booleans()) and data:
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.binary(max_size=4)) + data[i:]
    return data


@pytest.fixture(scope="module")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="yolo-props-"))
    (d / "images").mkdir()
    (d / "labels").mkdir()
    assert cv2.imwrite(str(d / "images" / "a.jpg"), np.full((32, 40, 3), 128, np.uint8))
    assert cv2.imwrite(str(d / "images" / "b.jpg"), np.full((32, 40, 3), 128, np.uint8))
    (d / "labels" / "b.txt").write_text(GOOD_19 + "\n")
    (d / "data.yaml").write_text(
        "path:\ntrain: images\nval: images\nkpt_shape: [19, 3]\nnames: {0: person, 1: stick}\n"
    )
    yield d
    shutil.rmtree(d, ignore_errors=True)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=mutated_file(),
    kpt_values=st.sampled_from(["auto", "flag", "conf"]),
    via_yaml=st.booleans(),
)
def test_mutated_labels_import_or_raise_input_error(workdir, data, kpt_values, via_yaml):
    (workdir / "labels" / "a.txt").write_bytes(data)
    # b.txt stays valid under every --kpt-values choice.
    (workdir / "labels" / "b.txt").write_text(
        (GOOD_19_CONF if kpt_values == "conf" else GOOD_19) + "\n"
    )
    src = workdir / "data.yaml" if via_yaml else workdir
    try:
        res = read_yolo(src, kpt_values=kpt_values)
    except InputError as exc:
        assert exc.path is not None and exc.path.name in ("a.txt", "b.txt")
        assert exc.reason
    else:
        ds = res.dataset
        assert ds.keypoints.shape[1:] == (19, 3)
        vis = ds.keypoints[..., 2] > 0
        assert np.isfinite(ds.keypoints[..., :2][vis]).all()
        assert np.isnan(ds.keypoints[..., :2][~vis]).all()
        assert set(np.unique(ds.keypoints[..., 2])) <= {0.0, 1.0, 2.0}
        assert (ds.keypoints[..., 0][vis] <= 40 * 1.01).all()
    # Under skip_bad nothing raises: the bad file's image is left out and listed.
    res = read_yolo(src, kpt_values=kpt_values, skip_bad=True)
    names = res.dataset.images["file_name"].tolist()
    assert "b.jpg" in names
    if "a.jpg" not in names:
        assert res.skipped and all(s.path.endswith("a.txt") for s in res.skipped)
