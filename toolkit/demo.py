"""``toolkit demo``: the whole loop on the committed samples, one command, in a scratch folder.

Steps (each one a real CLI command, printed before it runs, so the demo also teaches them)::

    toolkit import samples/arnis/data.yaml --labels samples/arnis/labels.csv --out DEMO/dataset
    toolkit correct DEMO/dataset
    toolkit validate DEMO/dataset --report DEMO/qa --fail-on never
    trainer fit DEMO/dataset --out DEMO/run --model graph --folds 5 --group subject \
        --taxonomy samples/arnis/taxonomy.json ...
    trainer export DEMO/run --out DEMO/run/model.onnx
    trainer score DEMO/dataset --model DEMO/run --out DEMO/queue.json
    # one sample video as a second dataset (per-frame labels, confidences, time smoothing):
    toolkit import samples/arnis/videos/s01_drill_labels --video .../s01_drill.mp4 ... --out DEMO/clip
    toolkit correct DEMO/clip
    trainer score DEMO/clip --model DEMO/run/model.onnx --out DEMO/clip_queue.json

``toolkit`` never imports ``trainer``: the trainer steps run as subprocesses
(``python -m trainer.cli``), like every other step. The summary reads what the steps wrote
(``RUN/metrics.json``, ``DATASET/corrections.csv``, the queue files).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Quick (default) and full training settings for ``trainer fit``.
SETTINGS: dict[str, dict] = {
    "quick": {"model": "graph", "folds": 5, "epochs": 30, "lr": 3e-3, "patience": 10},
    "full": {"model": "geopose", "folds": 5, "epochs": 60, "lr": 3e-3, "patience": 15},
}
DEMO_VIDEO = "s01_drill"


def samples_root() -> Path | None:
    """The committed sample set (``samples/arnis`` beside the packages), if present."""
    root = Path(__file__).resolve().parent.parent / "samples" / "arnis"
    return root if (root / "data.yaml").is_file() else None


@dataclass
class DemoStep:
    """One command of the demo.

    Attributes:
        name: Short name shown in the progress line.
        program: ``toolkit`` or ``trainer`` (the console script users type).
        args: Arguments after the program name.
        ok_codes: Exit codes that count as success.
    """

    name: str
    program: str
    args: list[str]
    ok_codes: tuple[int, ...] = (0,)

    def shown(self) -> str:
        """The command as a user would type it."""
        return " ".join([self.program, *(shlex.quote(a) for a in self.args)])

    def argv(self) -> list[str]:
        """What runs: the same CLI through this interpreter (works without the scripts on PATH)."""
        module = {"toolkit": "toolkit.cli", "trainer": "trainer.cli"}[self.program]
        return [sys.executable, "-m", module, *self.args]


@dataclass
class DemoSummary:
    """What the demo produced.

    Attributes:
        out: The demo folder.
        accuracy: ``(mean, std)`` stance accuracy over the folds.
        model: The model trained.
        corrections: Points changed per correction reason.
        corrected_annotations: Annotations with a corrected point.
        queue: ``{"items", "pending", "by_reason"}`` of the image queue.
        clip_queue: The same for the video clip (None when skipped).
        seconds: Wall time per step.
        viewer_command: The command that opens the viewer on the result.
    """

    out: Path
    accuracy: tuple[float, float]
    model: str
    corrections: dict[str, int]
    corrected_annotations: int
    queue: dict
    clip_queue: dict | None
    seconds: dict[str, float] = field(default_factory=dict)
    viewer_command: str = ""

    def text(self) -> str:
        """The summary the CLI prints."""
        fixed = (
            ", ".join(
                f"{k} {v}" for k, v in sorted(self.corrections.items(), key=lambda kv: -kv[1])
            )
            or "nothing"
        )
        by = ", ".join(f"{k} {v}" for k, v in self.queue["by_reason"].items()) or "none"
        lines = [
            "",
            "== demo summary",
            f"stance accuracy ({self.model}, {self.queue.get('folds', '?')}-fold by subject): "
            f"{self.accuracy[0]:.3f} ± {self.accuracy[1]:.3f}",
            f"correction fixed {sum(self.corrections.values())} stick points in "
            f"{self.corrected_annotations} annotations: {fixed}",
            f"review queue: {self.queue['pending']} frames wait for review ({by})",
        ]
        if self.clip_queue is not None:
            by = ", ".join(f"{k} {v}" for k, v in self.clip_queue["by_reason"].items()) or "none"
            lines.append(f"video clip queue: {self.clip_queue['pending']} frames ({by})")
        lines.append(f"total {sum(self.seconds.values()):.0f} s")
        lines += ["", "open the result in the viewer:", f"  {self.viewer_command}"]
        if self.clip_queue is not None:
            lines.append(f"  viewer {self.out / 'clip'} --queue {self.out / 'clip_queue.json'}")
        return "\n".join(lines)


def plan(
    out: Path,
    samples: Path,
    *,
    full: bool = False,
    folds: int | None = None,
    epochs: int | None = None,
    video: bool = True,
    vae: bool = True,
    quiet: bool = False,
) -> list[DemoStep]:
    """The demo's commands, in order.

    Args:
        out: The demo folder.
        samples: The sample set (``data.yaml``, ``labels.csv``, ``videos/``).
        full: The full training setting (GeoPose-Net with the visual stream) instead of quick.
        folds: Override the setting's folds (tests run a tiny demo).
        epochs: Override the setting's epochs.
        video: Also import, correct and score one sample video.
        vae: Run the learned-plausibility check in validate.
        quiet: Ask the trainer for no progress bars.
    """
    s = dict(SETTINGS["full" if full else "quick"])
    if folds is not None:
        s["folds"] = folds
    if epochs is not None:
        s["epochs"] = epochs
    ds, run, q = out / "dataset", out / "run", out / "queue.json"
    q_flag = ["-q"] if quiet else []
    steps = [
        DemoStep(
            "import",
            "toolkit",
            [
                "import",
                str(samples / "data.yaml"),
                "--labels",
                str(samples / "labels.csv"),
                "--out",
                str(ds),
            ],
        ),
        DemoStep("correct", "toolkit", ["correct", str(ds), "--show", "5"]),
        DemoStep(
            "validate",
            "toolkit",
            [
                "validate",
                str(ds),
                "--report",
                str(out / "qa"),
                "--fail-on",
                "never",
                *([] if vae else ["--no-vae"]),
            ],
        ),
        DemoStep(
            "fit",
            "trainer",
            [
                "fit",
                str(ds),
                "--out",
                str(run),
                "--model",
                s["model"],
                "--folds",
                str(s["folds"]),
                "--group",
                "subject",
                "--epochs",
                str(s["epochs"]),
                "--lr",
                str(s["lr"]),
                "--patience",
                str(s["patience"]),
                *(
                    ["--taxonomy", str(samples / "taxonomy.json")]
                    if (samples / "taxonomy.json").is_file()
                    else []
                ),
                *q_flag,
            ],
        ),
        DemoStep("export", "trainer", ["export", str(run), "--out", str(run / "model.onnx")]),
        DemoStep(
            "score", "trainer", ["score", str(ds), "--model", str(run), "--out", str(q), *q_flag]
        ),
    ]
    vdir = samples / "videos"
    if video and (vdir / f"{DEMO_VIDEO}.mp4").is_file():
        clip = out / "clip"
        steps += [
            DemoStep(
                "import video",
                "toolkit",
                [
                    "import",
                    str(vdir / f"{DEMO_VIDEO}_labels"),
                    "--video",
                    str(vdir / f"{DEMO_VIDEO}.mp4"),
                    "--labels",
                    str(vdir / f"{DEMO_VIDEO}_stances.csv"),
                    "--out",
                    str(clip),
                ],
            ),
            DemoStep("correct video", "toolkit", ["correct", str(clip), "--show", "0"]),
            DemoStep(
                "score video",
                "trainer",
                [
                    "score",
                    str(clip),
                    "--model",
                    str(run / "model.onnx"),
                    "--out",
                    str(out / "clip_queue.json"),
                    *q_flag,
                ],
            ),
        ]
    return steps


def _queue_counts(path: Path) -> dict:
    doc = json.loads(path.read_text("utf-8"))
    items = doc.get("items", [])
    return {
        "items": len(items),
        "pending": sum(not it.get("done") for it in items),
        "by_reason": dict(Counter(it["reason"] for it in items).most_common()),
    }


def _corrections(ds: Path) -> tuple[dict[str, int], int]:
    path = ds / "corrections.csv"
    if not path.is_file():
        return {}, 0
    counts: Counter = Counter()
    anns = set()
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            anns.add(row.get("ann_id"))
            for r in (row.get("reason") or "").split(";"):
                if r:
                    counts[r] += 1
    return dict(counts), len(anns)


def run_demo(
    out: str | Path,
    *,
    full: bool = False,
    overwrite: bool = False,
    samples: str | Path | None = None,
    folds: int | None = None,
    epochs: int | None = None,
    video: bool = True,
    vae: bool = True,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    runner: Callable[[list[str]], int] | None = None,
) -> DemoSummary:
    """Run the demo into ``out`` and return its summary.

    Args:
        out: Scratch folder to create (refused if it exists unless ``overwrite``).
        full: Full training setting (slower) instead of the quick one.
        overwrite: Replace an existing ``out``.
        samples: Sample set to use (default the committed ``samples/arnis``; generated into
            ``out/samples`` when absent).
        folds: See :func:`plan`.
        epochs: See :func:`plan`.
        video: See :func:`plan`.
        vae: See :func:`plan`.
        quiet: See :func:`plan`.
        echo: Where progress lines go.
        runner: Runs one argv and returns its exit code (default: ``subprocess.call``).

    Raises:
        FileExistsError: ``out`` exists and not ``overwrite``.
        RuntimeError: A step failed (the message names it and its command).
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(
                f"{out} already exists; pass --overwrite to replace it, or choose another --out."
            )
        if not (out / "demo.json").exists() and any(out.iterdir()):
            raise FileExistsError(
                f"{out} exists and is not a demo folder (no demo.json); "
                "refusing to delete it. Choose another --out."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "demo.json").write_text(json.dumps({"status": "running"}), "utf-8")
    if samples is None:
        samples = samples_root()
        if samples is None:
            from toolkit import synth

            echo(f"committed samples not found: generating a sample set into {out / 'samples'}")
            samples = synth.generate(out / "samples", per_class=3, subjects=8, videos=1)
    samples = Path(samples).resolve()
    if samples.is_relative_to(Path.cwd()):  # shorter commands to read: `samples/arnis/...`
        samples = samples.relative_to(Path.cwd())
    steps = plan(
        out, samples, full=full, folds=folds, epochs=epochs, video=video, vae=vae, quiet=quiet
    )
    env = dict(os.environ)
    env.setdefault("YOLO_OFFLINE", "1")
    env.setdefault("MPLBACKEND", "Agg")
    run = runner or (lambda argv: subprocess.call(argv, env=env))
    seconds: dict[str, float] = {}
    for i, step in enumerate(steps, start=1):
        echo(f"\n[{i}/{len(steps)}] {step.name}\n$ {step.shown()}")
        t0 = time.perf_counter()
        code = run(step.argv())
        seconds[step.name] = time.perf_counter() - t0
        if code not in step.ok_codes:
            raise RuntimeError(
                f"demo step '{step.name}' failed with exit code {code}: {step.shown()}"
            )
        echo(f"    ({seconds[step.name]:.1f} s)")
    metrics = json.loads((out / "run" / "metrics.json").read_text("utf-8"))
    corr, n_corr = _corrections(out / "dataset")
    queue = _queue_counts(out / "queue.json")
    queue["folds"] = metrics.get("n_folds")
    clip_q = out / "clip_queue.json"
    summary = DemoSummary(
        out=out,
        accuracy=(float(metrics["accuracy_mean"]), float(metrics["accuracy_std"])),
        model=str(metrics.get("model")),
        corrections=corr,
        corrected_annotations=n_corr,
        queue=queue,
        clip_queue=_queue_counts(clip_q) if clip_q.exists() else None,
        seconds=seconds,
        viewer_command=f"viewer {out / 'dataset'} --queue {out / 'queue.json'}",
    )
    (out / "demo.json").write_text(
        json.dumps(
            {
                "status": "done",
                "accuracy_mean": summary.accuracy[0],
                "accuracy_std": summary.accuracy[1],
                "model": summary.model,
                "corrections": corr,
                "corrected_annotations": n_corr,
                "queue": queue,
                "clip_queue": summary.clip_queue,
                "seconds": seconds,
                "commands": [s.shown() for s in steps],
                "viewer_command": summary.viewer_command,
            },
            indent=1,
        ),
        "utf-8",
    )
    return summary
