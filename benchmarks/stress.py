"""Reliability stress runs: kill during save, two writers, hostile inputs.

``make stress`` (or ``python -m benchmarks.stress``) runs the long versions and prints the counts;
``tests/toolkit/test_reliability.py`` and ``tests/toolkit/test_fuzz_*.py`` run the same code at a
small size. Three checks:

* **kill**: a child process edits a dataset (journalled point edits, unjournalled bulk edits,
  frequent saves) and is killed with SIGKILL at a random moment, often inside ``save()``. The
  dataset must load afterwards and hold every acknowledged edit (a journalled edit is
  acknowledged when ``set_points`` returns, a bulk edit when the next ``save()`` returns).
* **writers**: two processes edit and save the same dataset at once for a while; nothing either
  acknowledged may be missing at the end, and no save may fail.
* **fuzz**: mutated YOLO label files and data.yaml, COCO JSON, label CSVs and hand-edited
  ``dataset.json`` go through the public CLI (``toolkit import``, ``toolkit info``). Every input
  must be imported or refused with exit 2 (never a traceback), a refused import must leave no
  dataset behind, and every dataset written must load (and save and load again).

Usage::

    python -m benchmarks.stress                 # the long versions (>= 200 kills, 60 s, 10k)
    python -m benchmarks.stress --kills 20 --writers-seconds 5 --fuzz 500
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- a dataset to edit
def make_dataset(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A dataset of ``n`` annotations (one per image) saved at ``path``."""
    sys.path.insert(0, str(ROOT))
    from toolkit.dataset import Dataset

    rng = np.random.default_rng(seed)
    kp = rng.uniform(5, 300, (n, 19, 3)).round(2)
    kp[..., 2] = 2
    images = [
        {"id": i + 1, "file_name": f"f/{i:05d}.jpg", "width": 320, "height": 320} for i in range(n)
    ]
    anns = [{"id": 1000 + i, "image_id": i + 1} for i in range(n)]
    Dataset.from_records(images, anns, kp).save(path)
    return path


# A child that edits and saves, reporting on stdout what was acknowledged:
#   I row k x y   a journalled edit is about to be made (on disk or not, if killed now)
#   A row k x y   a journalled edit returned (acknowledged)
#   B row k x y   a bulk edit made in memory (acknowledged by the next D)
#   S             save() started;   D   save() returned
#   E message     an exception (a failure of the promise)
CHILD = textwrap.dedent(
    """
    import random, sys, time, traceback, warnings
    sys.path.insert(0, sys.argv[1])
    warnings.simplefilter("ignore")
    from toolkit.dataset import Dataset
    path, writer, n_writers, seconds, seed = sys.argv[2], *map(float, sys.argv[3:7])
    writer, n_writers = int(writer), int(n_writers)
    rng = random.Random(seed)
    out = sys.stdout
    try:
        ds = Dataset.load(path)
        rows = [r for r in range(len(ds)) if r % n_writers == writer]
        ids = ds.annotations["id"].to_numpy()
        print("R", flush=True)
        end = time.time() + seconds
        i = 0
        while time.time() < end:
            i += 1
            row, k = rng.choice(rows), rng.randrange(19)
            x, y = writer * 1000 + i % 1000 + 0.5, i // 1000 + 0.25
            roll = rng.random()
            if roll < 0.6:
                # the intent first: a kill after the fsync but before "A" may leave it on disk
                out.write(f"I {row} {k} {x} {y}\\n"); out.flush()
                ds.set_points(int(ids[row]), [k], [[x, y, 2]], source="human")
                out.write(f"A {row} {k} {x} {y}\\n"); out.flush()
            elif roll < 0.85:
                ds.keypoints[row, k] = [x, y, 2]
                ds.source[row, k] = 1
                out.write(f"B {row} {k} {x} {y}\\n"); out.flush()
            else:
                out.write("S\\n"); out.flush()
                ds.save()
                out.write("D\\n"); out.flush()
        out.write("S\\n"); out.flush()
        ds.save()
        out.write("D\\n"); out.flush()
    except BaseException as exc:
        out.write("E " + repr(exc).replace("\\n", " ") + "\\n"); out.flush()
        traceback.print_exc()
        sys.exit(3)
    """
)


def _child(path: Path, writer: int, n_writers: int, seconds: float, seed: int) -> subprocess.Popen:
    """Start an editing child.

    Its stdout is read through one buffered reader only (mixing ``readline`` with
    ``communicate`` would drop the lines ``readline`` buffered); stderr goes to a temporary file
    (``proc.errfile``).
    """
    args = [sys.executable, "-c", CHILD, str(ROOT), str(path)]
    args += [str(writer), str(n_writers), str(seconds), str(seed)]
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by _finish
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
    proc.errfile = err
    return proc


def _finish(proc: subprocess.Popen, timeout: float | None = None) -> tuple[str, str]:
    """The child's whole stdout (after any ``readline``) and stderr, once it has ended."""
    out = proc.stdout.read()
    proc.wait(timeout=timeout)
    proc.errfile.seek(0)
    err = proc.errfile.read()
    proc.errfile.close()
    return out, err


def _expected(lines: list[str]) -> tuple[dict, dict, int]:
    """Per cell: the last acknowledged value, and every later (unacknowledged) value.

    Returns:
        ``(acked, later, n_acknowledged)``: ``acked[(row, k)] = (x, y)``;
        ``later[(row, k)]`` = values written after the last acknowledgement of that cell (the
        dataset may hold any of those too: a kill after the rename, before the report).
    """
    acked: dict = {}
    later: dict = {}
    pending: dict = {}
    n = 0
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        tag = parts[0]
        if tag == "I":
            cell = (int(parts[1]), int(parts[2]))
            later.setdefault(cell, []).append((float(parts[3]), float(parts[4])))
        elif tag in ("A", "B"):
            cell = (int(parts[1]), int(parts[2]))
            val = (float(parts[3]), float(parts[4]))
            if tag == "A":
                acked[cell] = val
                later.pop(cell, None)
                pending.pop(cell, None)
                n += 1
            else:
                pending[cell] = val
                later.setdefault(cell, []).append(val)
        elif tag == "D":
            for cell, val in pending.items():
                acked[cell] = val
                later.pop(cell, None)
                n += 1
            pending = {}
    return acked, later, n


def _lost(ds, acked: dict, later: dict, examples: list | None = None) -> int:
    lost = 0
    for (row, k), val in acked.items():
        have = tuple(ds.keypoints[row, k, :2].tolist())
        if have != val and have not in later.get((row, k), []):
            lost += 1
            if examples is not None and len(examples) < 5:
                examples.append({"cell": [row, k], "expected": val, "found": have})
    return lost


def kill_runs(runs: int, workdir: Path, n: int = 400, seed: int = 0) -> dict:
    """``runs`` children killed with SIGKILL at random moments on one dataset.

    Returns:
        Counts: ``runs``, ``killed_during_save``, ``acknowledged``, ``lost``, ``unloadable``,
        ``failures`` (child exceptions), ``stale_temp_files`` left after a final save.
    """
    from toolkit.dataset import Dataset

    path = make_dataset(workdir / "kill_ds", n=n, seed=seed)
    rng = random.Random(seed)
    acked: dict = {}
    later: dict = {}
    res = {"runs": 0, "killed_during_save": 0, "acknowledged": 0, "lost": 0}
    res |= {"unloadable": 0, "failures": 0}
    for run in range(runs):
        proc = _child(path, 0, 1, 30.0, seed * 100_000 + run)
        ready = proc.stdout.readline()
        if not ready.startswith("R"):
            res["failures"] += 1
            proc.kill()
            _finish(proc)
            continue
        time.sleep(rng.uniform(0.02, 0.5))
        proc.send_signal(signal.SIGKILL)
        rest, _ = _finish(proc)
        lines = rest.splitlines()
        res["runs"] += 1
        if any(line.startswith("E") for line in lines):
            res["failures"] += 1
        tags = [ln.split()[0] for ln in lines if ln.strip()]
        if tags and tags[-1] == "S":
            res["killed_during_save"] += 1
        a, later_run, count = _expected(lines)
        res["acknowledged"] += count
        for cell, val in a.items():
            acked[cell] = val
            later.pop(cell, None)
        for cell, vals in later_run.items():
            later.setdefault(cell, []).extend(vals)
        try:
            ds = Dataset.load(path)
        except Exception:  # noqa: BLE001 - counted: the promise is that it always loads
            res["unloadable"] += 1
            continue
        res["lost"] += _lost(ds, acked, later, res.setdefault("lost_examples", []))
        # What the dataset holds now is the truth the next run starts from.
        for cell in list(later):
            later[cell] = []
        for row, k in acked:
            acked[(row, k)] = tuple(ds.keypoints[row, k, :2].tolist())
    final = Dataset.load(path)
    final.save()
    res["stale_temp_files"] = sum(1 for p in path.iterdir() if p.name.endswith(".tmp"))
    return res


def two_writers(seconds: float, workdir: Path, n: int = 400, seed: int = 0) -> dict:
    """Two processes editing and saving one dataset for ``seconds``.

    Returns:
        Counts: ``edits`` (acknowledged), ``saves``, ``lost``, ``failures``, ``unloadable``.
    """
    from toolkit.dataset import Dataset

    path = make_dataset(workdir / "writers_ds", n=n, seed=seed)
    procs = [_child(path, w, 2, seconds, seed + w) for w in range(2)]
    outs = [_finish(p, timeout=seconds + 300) for p in procs]
    res = {"seconds": seconds, "edits": 0, "saves": 0, "lost": 0, "failures": 0, "unloadable": 0}
    try:
        ds = Dataset.load(path)
    except Exception:  # noqa: BLE001
        res["unloadable"] = 1
        return res
    for proc, (out, err) in zip(procs, outs, strict=True):
        lines = out.splitlines()
        if proc.returncode != 0 or any(ln.startswith("E") for ln in lines):
            res["failures"] += 1
            res.setdefault("errors", []).append(err[-2000:])
        acked, later, count = _expected(lines)
        res["edits"] += count
        res["saves"] += sum(1 for ln in lines if ln == "D")
        res["lost"] += _lost(ds, acked, later)
    return res


# ---------------------------------------------------------------------- fuzzing
WEIRD_VALUES = [
    None,
    True,
    -1,
    0,
    0.5,
    2.5,
    1.5,
    1e300,
    -1e300,
    2**63,
    "",
    "x",
    "../escape.jpg",
    "/etc/passwd",
    "a" * 300,
    "é" * 200,
    "a\\b",
    [],
    {},
    [1, 2],
    {"a": 1},
]


def _deep(depth: int) -> object:
    v: object = 1
    for i in range(depth):
        v = [v] if i % 2 else {"x": v}
    return v


def _paths(doc: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:6]):
            out += _paths(v, prefix + (i,))
    return out


def mutate_json(doc: object, rng: random.Random, n_mutations: int = 1) -> object:
    """A copy of ``doc`` with ``n_mutations`` random fields replaced, removed or deepened."""
    doc = copy.deepcopy(doc)
    for _ in range(n_mutations):
        paths = _paths(doc)
        if not paths:
            return rng.choice(WEIRD_VALUES)
        path = rng.choice(paths)
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        roll = rng.random()
        if roll < 0.1 and isinstance(parent, dict):
            parent.pop(last, None)
        elif roll < 0.25 and isinstance(parent[last], dict):
            # an unknown field: kept as is by the readers, so it must also load and save
            parent[last][f"x_{rng.randrange(99)}"] = copy.deepcopy(
                rng.choice(WEIRD_VALUES + [_deep(70), _deep(300), _deep(30)])
            )
        elif roll < 0.15:
            parent[last] = _deep(rng.choice([70, 255, 300]))
        elif (
            roll < 0.4
            and isinstance(parent[last], int | float)
            and not isinstance(parent[last], bool)
        ):
            parent[last] = parent[last] * rng.choice([-1, 0.5, 1.5, 1e6, 1e300]) + rng.choice(
                [0, 0.5, -0.5]
            )
        else:
            parent[last] = copy.deepcopy(rng.choice(WEIRD_VALUES))
    return doc


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Byte-level damage: truncation, a flipped byte, an inserted or deleted run."""
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
    b = bytearray(data)
    roll = rng.random()
    i = rng.randrange(len(b))
    if roll < 0.25:
        del b[i:]
    elif roll < 0.5:
        b[i] = rng.randrange(256)
    elif roll < 0.75:
        b[i:i] = rng.choice([b"\x00", b"\xff\xfe", b",", b"\n", b"-", b"1e309", b'"', b"../"])
    else:
        del b[i : i + rng.randrange(1, 40)]
    return bytes(b)


def mutate_text_tokens(text: str, rng: random.Random) -> str:
    """Replace a whitespace- or comma-separated token of ``text`` with a hostile one."""
    lines = text.splitlines()
    if not lines:
        return rng.choice(["", "x", ","])
    li = rng.randrange(len(lines))
    sep = "," if "," in lines[li] else " "
    toks = lines[li].split(sep)
    ti = rng.randrange(len(toks))
    toks[ti] = rng.choice(
        [
            "",
            "-1",
            "0.5",
            "2.5",
            "1e300",
            "nan",
            "inf",
            "../x.jpg",
            "/etc/passwd",
            '"',
            "a" * 300,
            "é" * 200,
            "1 2",
            ",,",
            "\x00",
            "99999999999999999999",
        ]
    )
    lines[li] = sep.join(toks)
    if rng.random() < 0.2:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
    return "\n".join(lines) + rng.choice(["\n", ""])


def _coco_base(root: Path) -> tuple[Path, dict]:
    """A small COCO keypoints file with its images (tiny real JPEGs)."""
    import cv2

    sys.path.insert(0, str(ROOT))
    from toolkit import layout

    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(3):
        name = f"s0{i + 1}_{i:03d}.jpg"
        cv2.imwrite(str(root / "images" / name), np.full((40, 40, 3), 90, np.uint8))
        images.append({"id": i + 1, "file_name": name, "width": 40, "height": 40})
        kp = rng.uniform(1, 39, (19, 3)).round(2)
        kp[:, 2] = 2
        anns.append(
            {
                "id": 10 + i,
                "image_id": i + 1,
                "category_id": 1,
                "keypoints": kp.ravel().tolist(),
                "bbox": [1, 1, 30, 30],
                "area": 900,
                "iscrowd": 0,
                "num_keypoints": 19,
            }
        )
    doc = {
        "info": {"description": "fuzz"},
        "images": images,
        "annotations": anns,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "keypoints": list(layout.KEYPOINT_NAMES),
                "skeleton": [[1, 2], [18, 19]],
            }
        ],
        "videos": [{"id": 1, "file_name": "clip.mp4", "fps": 15, "frame_count": 10}],
    }
    images.append(
        {
            "id": 4,
            "file_name": "clip/000002.jpg",
            "width": 40,
            "height": 40,
            "video_id": 1,
            "frame_index": 2,
        }
    )
    return root / "ann.json", doc


def _yolo_base(root: Path) -> Path:
    import cv2

    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(
            str(root / "images" / f"s0{i + 1}_{i:03d}.jpg"), np.full((40, 40, 3), 90, np.uint8)
        )
        kp = rng.uniform(0.1, 0.9, (19, 3)).round(4)
        kp[:, 2] = 2
        vals = " ".join(f"{v:g}" for v in kp.ravel())
        (root / "labels" / f"s0{i + 1}_{i:03d}.txt").write_text(f"0 0.5 0.5 0.6 0.6 {vals}\n")
    (root / "data.yaml").write_text(
        "path: .\ntrain: images\nval: images\nkpt_shape: [19, 3]\nnames: {0: person}\n"
    )
    return root


class Fuzzer:
    """Runs mutated inputs through the public CLI and counts the outcomes.

    Attributes:
        counts: Per family: ``inputs``, ``imported``, ``refused``, ``tracebacks``,
            ``unloadable``, ``partial`` (a refused import that left a dataset behind).
        examples: A few inputs that broke a promise (for the report).
    """

    FAMILIES = ("yolo", "coco", "labels_csv", "dataset_json")

    def __init__(self, workdir: Path, seed: int = 0):
        from click.testing import CliRunner

        from toolkit.cli import main

        self.cli, self.runner = main, CliRunner()
        self.workdir = Path(workdir)
        self.rng = random.Random(seed)
        self.counts = {
            f: dict.fromkeys(
                ("inputs", "imported", "refused", "tracebacks", "unloadable", "partial"), 0
            )
            for f in self.FAMILIES
        }
        self.examples: list[str] = []
        base = self.workdir / "base"
        self.coco_json, self.coco_doc = _coco_base(base / "coco")
        self.yolo_root = _yolo_base(base / "yolo")
        self.csv_text = "file,stance,subject\n" + "".join(
            f"{im['file_name']},forward_high,s0{i}\n"
            for i, im in enumerate(self.coco_doc["images"][:3])
        )
        self.coco_json.write_bytes(orjson.dumps(self.coco_doc))
        ds_dir = self.workdir / "base_ds"
        self._invoke(["import", str(self.coco_json), "--out", str(ds_dir)])
        self.ds_bytes = (ds_dir / "dataset.json").read_bytes()
        self.ds_doc = orjson.loads(self.ds_bytes)
        self.ds_dir = ds_dir
        self.n = 0

    def _invoke(self, args: list[str]):
        return self.runner.invoke(self.cli, args, catch_exceptions=True)

    def _classify(self, family: str, result, out: Path | None, what: str) -> str:
        c = self.counts[family]
        c["inputs"] += 1
        if result.exit_code == 0:
            c["imported"] += 1
            if out is not None and not self._loads(out):
                c["unloadable"] += 1
                self._example(family, "unloadable", what)
                return "unloadable"
            return "imported"
        if result.exit_code == 2:  # a clear message (UsageError), nothing written
            c["refused"] += 1
            if out is not None and out.exists():
                c["partial"] += 1
                self._example(family, "partial", what)
            return "refused"
        c["tracebacks"] += 1
        exc = result.exception
        where = ""
        if result.exc_info is not None:
            import traceback

            frame = traceback.extract_tb(result.exc_info[2])[-1]
            where = f" at {Path(frame.filename).name}:{frame.lineno}"
        self._example(family, f"traceback {type(exc).__name__}: {exc}{where}", what)
        return "traceback"

    def _example(self, family: str, kind: str, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(f"{family}: {kind}: {what[:300]}")

    def _loads(self, out: Path) -> bool:
        from toolkit.dataset import Dataset

        try:
            with _quiet():
                ds = Dataset.load(out)
                ds.save()
                Dataset.load(out)
        except Exception:  # noqa: BLE001 - any failure here breaks the promise
            return False
        return True

    def _fresh(self) -> Path:
        self.n += 1
        d = self.workdir / f"case{self.n}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def coco(self, doc: object | None = None, raw: bytes | None = None) -> str:
        d = self._fresh()
        shutil.copytree(self.coco_json.parent / "images", d / "images")
        if raw is None:
            if doc is None:
                doc = mutate_json(self.coco_doc, self.rng, self.rng.choice([1, 1, 2, 3]))
            try:
                raw = orjson.dumps(doc)
            except (orjson.JSONEncodeError, TypeError):
                raw = orjson.dumps(str(doc)[:1000])
        (d / "ann.json").write_bytes(raw)
        out = d / "ds"
        result = self._invoke(
            ["import", str(d / "ann.json"), "--format", "coco", "--out", str(out)]
        )
        return self._finish("coco", result, out, raw, d)

    def yolo(self) -> str:
        d = self._fresh()
        src = d / "yolo"
        shutil.copytree(self.yolo_root, src)
        labels = sorted((src / "labels").glob("*.txt"))
        roll = self.rng.random()
        if roll < 0.15:
            y = src / "data.yaml"
            y.write_bytes(mutate_bytes(y.read_bytes(), self.rng))
        else:
            f = self.rng.choice(labels)
            text = f.read_text()
            if self.rng.random() < 0.5:
                f.write_bytes(mutate_bytes(text.encode(), self.rng))
            else:
                f.write_text(mutate_text_tokens(text, self.rng))
        out = d / "ds"
        result = self._invoke(
            ["import", str(src / "data.yaml"), "--format", "yolo", "--out", str(out)]
        )
        return self._finish("yolo", result, out, b"", d)

    def labels_csv(self, text: str | None = None) -> str:
        d = self._fresh()
        shutil.copytree(self.coco_json.parent / "images", d / "images")
        (d / "ann.json").write_bytes(orjson.dumps(self.coco_doc))
        if text is None:
            text = mutate_text_tokens(self.csv_text, self.rng)
            data = text.encode("utf-8", "surrogatepass")
            if self.rng.random() < 0.3:
                data = mutate_bytes(data, self.rng)
        else:
            data = text.encode("utf-8", "surrogatepass")
        (d / "labels.csv").write_bytes(data)
        out = d / "ds"
        result = self._invoke(
            [
                "import",
                str(d / "ann.json"),
                "--format",
                "coco",
                "--labels",
                str(d / "labels.csv"),
                "--out",
                str(out),
            ]
        )
        return self._finish("labels_csv", result, out, data, d)

    def dataset_json(self, doc: object | None = None, raw: bytes | None = None) -> str:
        d = self._fresh()
        ds = d / "ds"
        shutil.copytree(self.ds_dir, ds)
        if raw is None:
            if doc is None and self.rng.random() < 0.2:
                raw = mutate_bytes(self.ds_bytes, self.rng)
            else:
                doc = (
                    doc
                    if doc is not None
                    else mutate_json(self.ds_doc, self.rng, self.rng.choice([1, 1, 2]))
                )
                try:
                    raw = orjson.dumps(doc)
                except (orjson.JSONEncodeError, TypeError):
                    raw = b"{}"
        (ds / "dataset.json").write_bytes(raw)
        result = self._invoke(["info", str(ds)])
        verdict = self._classify("dataset_json", result, None, repr(raw[:200]))
        if verdict == "imported" and not self._loads(ds):
            self.counts["dataset_json"]["unloadable"] += 1
            self._example("dataset_json", "loads but cannot be saved and reloaded", repr(raw[:200]))
            verdict = "unloadable"
        shutil.rmtree(d, ignore_errors=True)
        return verdict

    def _finish(self, family: str, result, out: Path, raw: bytes, d: Path) -> str:
        verdict = self._classify(family, result, out, repr(raw[:200]))
        shutil.rmtree(d, ignore_errors=True)
        return verdict

    def run(self, n: int) -> dict:
        """``n`` inputs spread over the four families."""
        fams = [self.yolo, self.coco, self.labels_csv, self.dataset_json]
        with _quiet():
            for i in range(n):
                fams[i % 4]()
        return self.counts


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------- the runner
def main(argv: list[str] | None = None) -> dict:
    """Run the three checks and print their counts (``make stress``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--writers-seconds", type=float, default=60.0)
    ap.add_argument("--fuzz", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="arnis-stress-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        results["kill"] = kill_runs(args.kills, tmp, seed=args.seed)
        results["kill"]["seconds"] = round(time.perf_counter() - t0, 1)
        print("kill during save:", results["kill"], flush=True)
        results["writers"] = two_writers(args.writers_seconds, tmp, seed=args.seed)
        print(
            "two writers:",
            {k: v for k, v in results["writers"].items() if k != "errors"},
            flush=True,
        )
        t0 = time.perf_counter()
        fz = Fuzzer(tmp / "fuzz", seed=args.seed)
        results["fuzz"] = fz.run(args.fuzz)
        print(f"fuzz ({round(time.perf_counter() - t0, 1)} s):", flush=True)
        for fam, c in results["fuzz"].items():
            print(f"  {fam:13s} {c}", flush=True)
        for ex in fz.examples:
            print("  example:", ex, flush=True)
    bad = (
        results["kill"]["lost"]
        + results["kill"]["unloadable"]
        + results["kill"]["failures"]
        + results["writers"]["lost"]
        + results["writers"]["failures"]
        + results["writers"]["unloadable"]
        + sum(c["tracebacks"] + c["unloadable"] + c["partial"] for c in results["fuzz"].values())
    )
    print("RESULT:", "OK" if bad == 0 else f"{bad} broken promises", flush=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    results["broken_promises"] = bad
    (out / "stress.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return results


if __name__ == "__main__":
    sys.exit(1 if main()["broken_promises"] else 0)
