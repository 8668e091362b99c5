"""I/O benchmarks: YOLO import, COCO import, dataset load and save.

Each measurement runs beside a straightforward per-line reference written in plain Python (open
each file, split lines, ``float()`` each token, build dicts; ``json.load`` + per-annotation
lists), in the same process on the same files, and the table shows the ratio (reference time /
ours; above 1 means ours is faster). Times are the best of ``repeat`` runs (wall clock), plus the
CPU time of that run.

* ``yolo_import``: 10k label files (19 keypoints, the samples' ``images/<stance>/<subject>_<n>``
  layout, tiny hard-linked JPEGs) read by ``toolkit.io.read`` (ours also checks every value and
  reads each image's size; the reference only parses the labels).
* ``coco_import``: a 100k-annotation COCO file read by ``toolkit.io.read(format="coco")``.
* ``dataset_load`` / ``dataset_save``: 100k annotations, ``Dataset.load`` (schema validation
  included) / ``Dataset.save`` vs ``json.load``/``json.dump`` of per-annotation lists.
* ``label``: ``toolkit label`` of a 10k-image dataset (every stance replaced) from a
  ``file,stance`` CSV: ours journals the edits as one batch (one fsync) and folds them; the
  reference journals each edit on its own (``set_image_field``: one fsync each, what
  ``toolkit label`` did before) and then folds. Each run starts from a fresh copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

STANCES = [
    f"{f}_{c}" for f in ("forward", "back", "horse", "cat") for c in ("high", "middle", "low")
]


def _tiny_jpeg(path: Path) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.full((8, 8, 3), 128, np.uint8)):
        raise OSError(f"could not write {path}")


def _timeit(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    best, cpu = float("inf"), 0.0
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    return best, cpu


# ---------------------------------------------------------------------- data
def make_yolo(root: Path, n_files: int, seed: int = 0) -> Path:
    """``n_files`` label files + images in the samples' layout; returns the ``data.yaml``."""
    rng = np.random.default_rng(seed)
    jpeg = root / "_tiny.jpg"
    _tiny_jpeg(jpeg)
    lines = []
    for i in range(n_files):
        stance = STANCES[i % len(STANCES)]
        name = f"{stance}/s{i % 8 + 1:02d}_{i:05d}"
        for sub in ("images", "labels"):
            (root / sub / stance).mkdir(parents=True, exist_ok=True)
        os.link(jpeg, root / "images" / f"{name}.jpg")
        kp = np.column_stack([rng.uniform(0.2, 0.8, (19, 2)), np.full(19, 2.0)])
        box = [0.5, 0.5, 0.6, 0.9]
        tokens = ["0"] + [f"{v:.6f}" for v in box] + [f"{v:.6f}" for v in kp.ravel()]
        lines.append((name, " ".join(tokens) + "\n"))
    for name, line in lines:
        (root / "labels" / f"{name}.txt").write_text(line)
    names = "\n".join(f"    - {n}" for n in _names())
    (root / "data.yaml").write_text(
        "path:\ntrain: images\nval: images\nkpt_shape: [19, 3]\n"
        "flip_idx: [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 17, 18]\n"
        f"names:\n  0: person\nkpt_names:\n  0:\n{names}\n"
    )
    return root / "data.yaml"


def _names() -> tuple[str, ...]:
    from toolkit import layout

    return layout.KEYPOINT_NAMES


def make_dataset(n: int, seed: int = 0, full: bool = False):
    """A random ``n``-annotation dataset (one person per image, 2-decimal pixel coordinates).

    With ``full``: a confidence for every point and a corrected stick (grip/tip moved, source
    ``corrected``), the heaviest thing a dataset file holds.
    """
    from toolkit import layout
    from toolkit.dataset import Dataset

    rng = np.random.default_rng(seed)
    kp = rng.uniform(0, 640, (n, 19, 3)).round(2)
    kp[..., 2] = rng.integers(0, 3, (n, 19))
    images = [
        {
            "id": i + 1,
            "file_name": f"{STANCES[i % 12]}/s{i % 8 + 1:02d}_{i:06d}.jpg",
            "width": 640,
            "height": 480,
            "stance": STANCES[i % 12],
            "subject": f"s{i % 8 + 1:02d}",
        }
        for i in range(n)
    ]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1} for i in range(n)]
    if not full:
        return Dataset.from_records(images, anns, kp)
    ds = Dataset.from_records(images, anns, kp, scores=rng.uniform(0, 1, (n, 19)))
    ds.keypoints[:, layout.GRIP :, :2] += 1.5
    ds.source[:, layout.GRIP :] = layout.CORRECTED
    return ds


# ---------------------------------------------------------------------- references
def ref_yolo(root: Path) -> list[dict]:
    """Plain per-line YOLO reading: open each file, split lines, float() each token."""
    out = []
    for dirpath, _dirs, files in os.walk(root / "labels"):
        for f in files:
            with open(os.path.join(dirpath, f)) as fh:
                for line in fh:
                    tok = line.split()
                    if not tok:
                        continue
                    vals = [float(t) for t in tok[1:]]
                    kps = [vals[4 + 3 * k : 7 + 3 * k] for k in range(19)]
                    out.append(
                        {"file": f, "class": int(tok[0]), "bbox": vals[:4], "keypoints": kps}
                    )
    return out


def ref_load(path: Path) -> tuple[list, list]:
    """``json.load`` + per-annotation lists of points, sources and boxes."""
    with open(path / "dataset.json") as fh:
        doc = json.load(fh)
    kps, boxes = [], []
    for a in doc["annotations"]:
        k = a["keypoints"]
        kps.append([[k[3 * j], k[3 * j + 1], k[3 * j + 2]] for j in range(19)])
        boxes.append(list(a.get("bbox", [])))
    return kps, boxes


def ref_save(doc: dict, path: Path) -> None:
    """Per-annotation dicts of plain lists + ``json.dump``."""
    anns = []
    for a in doc["annotations"]:
        anns.append({**a, "keypoints": [float(v) for v in a["keypoints"]]})
    with open(path, "w") as fh:
        json.dump({**doc, "annotations": anns}, fh)


def _label_runs(tmp: Path, n: int, repeat: int) -> tuple[tuple, tuple]:
    """Time ``label_dataset`` (batched) and the per-edit reference on fresh copies."""
    from toolkit.dataset import Dataset
    from toolkit.labels import label_dataset, read_label_rows

    src = tmp / "label_src"
    ds = make_dataset(n)
    ds.save(src)
    names = ds.images["file_name"].tolist()
    csv = tmp / "label.csv"
    csv.write_text(
        "file,stance\n" + "".join(f"{f},{STANCES[(i + 1) % 12]}\n" for i, f in enumerate(names))
    )

    def one_by_one(path: Path) -> None:
        d = Dataset.load(path)
        ids = d.images["id"].to_numpy()
        for r in read_label_rows(d, csv):
            for row in r.rows:
                d.set_image_field(int(ids[row]), "stance", r.stance)
        d.save()

    def batched(path: Path) -> None:
        label_dataset(path, csv)

    times = []
    for fn in (batched, one_by_one):
        best, cpu = float("inf"), 0.0
        for _ in range(repeat):
            work = tmp / "label_work"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(src, work)
            t0, c0 = time.perf_counter(), time.process_time()
            fn(work)
            wall = time.perf_counter() - t0
            if wall < best:
                best, cpu = wall, time.process_time() - c0
        times.append((best, cpu))
    return times[0], times[1]


# ---------------------------------------------------------------------- main
def _row(name: str, n: int, unit: str, ours: tuple[float, float], ref: tuple[float, float]) -> dict:
    print(
        f"  {name}: ours {ours[0]:.3f} s (cpu {ours[1]:.3f}), reference {ref[0]:.3f} s", flush=True
    )
    return {
        "name": name,
        "n": n,
        "unit": unit,
        "ours_s": round(ours[0], 3),
        "ours_cpu_s": round(ours[1], 3),
        "ref_s": round(ref[0], 3),
        "ref_cpu_s": round(ref[1], 3),
        "ours_per_s": round(n / ours[0]),
        "ref_per_s": round(n / ref[0]),
        "ratio": round(ref[0] / ours[0], 2),
    }


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'benchmark':<14} {'n':>8} {'unit':<12} {'ours s':>8} {'cpu s':>7} {'ours/s':>10} "
        f"{'ref s':>8} {'ref/s':>10} {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['name']:<14} {r['n']:>8} {r['unit']:<12} {r['ours_s']:>8.3f} "
            f"{r['ours_cpu_s']:>7.3f} {r['ours_per_s']:>10} {r['ref_s']:>8.3f} "
            f"{r['ref_per_s']:>10} {r['ratio']:>6.2f}"
        )


def main(quick: bool = False) -> dict:
    """Run the I/O benchmarks; ``quick`` uses 1k files / 10k annotations."""
    from toolkit import io
    from toolkit.dataset import Dataset

    n_files = 1_000 if quick else 10_000
    n_ann = 10_000 if quick else 100_000
    repeat = 1 if quick else 3
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_io_"))
    try:
        # YOLO import.
        if "yolo" in io.formats():
            yaml_path = make_yolo(tmp / "yolo", n_files)
            ours = _timeit(lambda: io.read(yaml_path, "yolo"), repeat)
            ref = _timeit(lambda: ref_yolo(tmp / "yolo"), repeat)
            rows.append(_row("yolo_import", n_files, "files", ours, ref))
        # Dataset save / load.
        ds = make_dataset(n_ann)
        target = tmp / "ds"
        ours = _timeit(lambda: ds.save(target, force=True), repeat)
        doc = ds.to_coco()
        ref = _timeit(lambda: ref_save(doc, tmp / "ref.json"), repeat)
        rows.append(_row("dataset_save", n_ann, "annotations", ours, ref))
        ours = _timeit(lambda: Dataset.load(target), repeat)
        ref = _timeit(lambda: ref_load(target), repeat)
        rows.append(_row("dataset_load", n_ann, "annotations", ours, ref))
        # The heavier case: detector scores on every point and a corrected stick (so
        # keypoints_raw and mixed provenance are written too).
        full = make_dataset(n_ann, full=True)
        target_full = tmp / "ds_full"
        ours = _timeit(lambda: full.save(target_full, force=True), repeat)
        doc_full = full.to_coco()
        ref = _timeit(lambda: ref_save(doc_full, tmp / "ref_full.json"), repeat)
        rows.append(_row("save_scored", n_ann, "annotations", ours, ref))
        ours = _timeit(lambda: Dataset.load(target_full), repeat)
        ref = _timeit(lambda: ref_load(target_full), repeat)
        rows.append(_row("load_scored", n_ann, "annotations", ours, ref))
        # COCO import (a plain COCO file written by our exporter, images not checked on disk:
        # the media root is the generated image folder, where every image exists).
        coco_dir = tmp / "coco"
        (coco_dir / "images").mkdir(parents=True)
        jpeg = tmp / "one.jpg"
        _tiny_jpeg(jpeg)
        for stance in STANCES:
            (coco_dir / "images" / stance).mkdir()
        for name in ds.images["file_name"].tolist():  # symlinks: ext4 caps hard links at 65k
            os.symlink(jpeg, coco_dir / "images" / name)
        coco_json = io.write(ds, "coco", coco_dir / "coco.json")
        ours = _timeit(lambda: io.read(coco_json, "coco"), repeat)

        def ref_coco() -> None:
            with open(coco_json) as fh:
                d = json.load(fh)
            by_image = {im["id"]: im for im in d["images"]}
            for a in d["annotations"]:
                k = a["keypoints"]
                _ = (
                    by_image[a["image_id"]]["file_name"],
                    [[k[3 * j], k[3 * j + 1], k[3 * j + 2]] for j in range(17)],
                )

        ref = _timeit(ref_coco, repeat)
        rows.append(_row("coco_import", n_ann, "annotations", ours, ref))
        # toolkit label: one journal batch vs one fsynced journal line per edit.
        n_label = 1_000 if quick else 10_000
        ours, ref = _label_runs(tmp, n_label, 1)
        rows.append(_row("label", n_label, "images", ours, ref))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows)
    return {
        "rows": rows,
        "load_100k_under_2s": next(
            (r["ours_s"] < 2.0 for r in rows if r["name"] == "dataset_load" and r["n"] >= 100_000),
            None,
        ),
    }


if __name__ == "__main__":
    main()
