"""``trainer export``: a run's model(s) as one ONNX graph, checked against PyTorch.

The graph takes the arrays :func:`trainer.data.featurise` and :func:`trainer.data.read_crops`
produce (``nodes (B, 19, 5)``, ``edge_attr (B, E, 4)``, ``crop (B, 3, 128, 128)`` float 0..1;
a variant without a stream has no input for it) and returns ``stance_prob (B, C)`` (plus
``family_prob``/``chamber_prob`` for hierarchical models and ``geometry (B, 4)`` with the aux head).
The batch axis is dynamic. A fold's model is its seed ensemble (every member, each with its
calibrated temperature dividing the stance logits, probabilities averaged); ``--ensemble``
averages every fold's members inside the one graph.

The file carries its own documentation in ``metadata_props``: class names, taxonomy, keypoint
layout and graph edges, the normalisation a consumer must reproduce, the crop size, the inputs
and outputs, and the parity measured at export.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from toolkit import layout
from trainer.data import CROP_SIZE, featurise, normalisation_spec
from trainer.graph import GRAPH, GROUPS
from trainer.models import GeoPoseNet

PARITY_TOL = 1e-4
OPSET = 17

#: A standing person in a unit box (x right, y down), COCO order: tracing and parity poses.
STANDING_TEMPLATE = np.array(
    [[0.5, 0.1], [0.48, 0.08], [0.52, 0.08], [0.45, 0.09], [0.55, 0.09], [0.4, 0.22],
     [0.6, 0.22], [0.36, 0.36], [0.64, 0.36], [0.34, 0.48], [0.66, 0.48], [0.44, 0.52],
     [0.56, 0.52], [0.43, 0.7], [0.57, 0.7], [0.42, 0.88], [0.58, 0.88]]
)  # fmt: skip


class ExportModule(nn.Module):
    """Fold model(s) behind one forward with positional inputs and probability outputs.

    Shapes:
        inputs: ``nodes (B, 19, 5)``, ``edge_attr (B, E, 4)``, ``crop (B, 3, 128, 128)`` (those
        the variant uses, in that order). Returns a tuple in :attr:`output_names` order.
    """

    def __init__(self, models: list[GeoPoseNet]):
        super().__init__()
        self.models = nn.ModuleList(m.eval() for m in models)
        m0 = models[0]
        if m0.visual_source == "yolo":
            raise ValueError(
                "Expected a model without the yolo visual stream: it needs a full-frame "
                "yolo11n-pose pass per frame (tens of ms on a CPU, far over the 1 ms budget) "
                "and is not exported; train with --visual none (the default) to export."
            )
        self.input_names = [
            *(["nodes", "edge_attr"] if m0.uses_graph else []),
            *(["crop"] if m0.uses_visual else []),
        ]
        self.output_names = ["stance_prob"]
        if m0.hierarchical:
            self.output_names += ["family_prob", "chamber_prob"]
        if m0.geometry is not None:
            self.output_names += ["geometry"]

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the module (shapes in the class docstring)."""
        kw = dict(zip(self.input_names, args, strict=True))
        acc: list[torch.Tensor] | None = None
        for m in self.models:
            o = m(**kw)
            # The member's calibrated temperature (1 when never calibrated).
            outs = [(o["stance"] / m.temperature).softmax(-1)]
            if "family" in o:
                outs += [o["family"].softmax(-1), o["chamber"].softmax(-1)]
            if "geometry" in o:
                outs += [o["geometry"]]
            acc = outs if acc is None else [a + b for a, b in zip(acc, outs, strict=True)]
        k = float(len(self.models))
        return tuple(a / k for a in acc)

    def __repr__(self) -> str:
        return (
            f"ExportModule(models={len(self.models)}, variant={self.models[0].variant!r}, "
            f"inputs={self.input_names}, outputs={self.output_names})"
        )


@dataclass
class ExportReport:
    """What ``trainer export`` did.

    Attributes:
        path: The ONNX file.
        folds: Fold models inside the graph.
        parity: ``{batch: max abs difference}`` between onnxruntime and PyTorch.
        inputs, outputs: Graph input and output names.
        size_bytes: File size.
    """

    path: Path
    folds: list[int]
    parity: dict[int, float]
    inputs: list[str]
    outputs: list[str]
    size_bytes: int


def example_inputs(module: ExportModule, batch: int, seed: int = 0) -> list[torch.Tensor]:
    """Plausible inputs for tracing and parity: jittered standing poses, random crops."""
    rng = np.random.default_rng(seed)
    # The standing template holding a stick raised to the right (grip, tip), 200 px tall.
    tpl = np.vstack([STANDING_TEMPLATE, [[0.66, 0.5], [0.9, 0.3]]]) * 200
    kp = tpl[None] + rng.normal(0, 12, (batch, 19, 2))
    kp = np.concatenate([kp, np.full((batch, 19, 1), 2.0)], -1)
    kp[rng.random((batch, 19)) < 0.05] = np.nan  # some missing points
    conf = rng.uniform(0.3, 1.0, (batch, 19))
    nodes, edges = featurise(kp, conf)
    feed = {
        "nodes": torch.from_numpy(nodes),
        "edge_attr": torch.from_numpy(edges),
        "crop": torch.from_numpy(rng.random((batch, 3, CROP_SIZE, CROP_SIZE), dtype=np.float32)),
    }
    return [feed[n] for n in module.input_names]


def ort_session(path: str | Path, threads: int = 2, spinning: bool = True):
    """An onnxruntime CPU session with ``threads`` intra-op threads and one inter-op thread.

    The graph runs sequentially, with every graph optimisation on.

    ``spinning`` (onnxruntime's default) lets the pool threads busy-wait between ops: the lowest
    latency on an otherwise idle machine. On a 2-core machine that other processes also use,
    the spinning threads compete with them: pass ``spinning=False`` there (measured at load
    average 2-4: batch 64 in ~43 ms instead of ~80 ms, batch-1 p95 ~1.4 ms instead of 5-9 ms;
    idle, it costs ~0.35 ms per batch-1 call).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def check_parity(
    module: ExportModule, path: str | Path, batches: tuple[int, ...] = (1, 64)
) -> dict[int, float]:
    """Max abs difference of every output between onnxruntime and PyTorch, per batch size."""
    sess = ort_session(path)
    out = {}
    for b in batches:
        x = example_inputs(module, b, seed=b)
        with torch.no_grad():
            ref = [t.numpy() for t in module(*x)]
        got = sess.run(None, {n: t.numpy() for n, t in zip(module.input_names, x, strict=True)})
        out[b] = float(max(np.abs(g - r).max() for g, r in zip(got, ref, strict=True)))
    return out


def _fold_dirs(run: Path) -> list[Path]:
    dirs = sorted((run / "folds").glob("fold_*/model.pt"), key=lambda p: int(p.parent.name[5:]))
    return [p.parent for p in dirs]


def export_run(
    run: str | Path,
    out: str | Path,
    *,
    ensemble: bool = False,
    fold: int | None = None,
    overwrite: bool = False,
) -> ExportReport:
    """Export a run folder to ONNX and check parity with PyTorch (batch 1 and 64).

    Args:
        run: A ``trainer fit`` run folder.
        out: The ``.onnx`` file to write.
        ensemble: Average every fold model inside the graph.
        fold: Which fold model to export alone (default: the lowest validation loss).
        overwrite: Replace an existing ``out``.

    Raises:
        FileNotFoundError: Not a run folder, or a run without model checkpoints (baselines).
        FileExistsError: ``out`` exists and not ``overwrite``.
        RuntimeError: Parity worse than 1e-4 (the file is not written).
    """
    from trainer.runs import load_members

    run, out = Path(run), Path(out)
    if not (run / "metrics.json").exists():
        raise FileNotFoundError(
            f"Expected a run folder made by `trainer fit` (with metrics.json), but {run} has none."
        )
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it.")
    dirs = _fold_dirs(run)
    if not dirs:
        metrics = json.loads((run / "metrics.json").read_text("utf-8"))
        raise FileNotFoundError(
            f"Expected fold checkpoints (folds/fold_*/model.pt) in {run}, but it has none: "
            f"model {metrics.get('model')!r} is not a neural network (only geopose, graph, "
            "visual, flat and no-aux runs export)."
        )
    loaded = [load_members(d / "model.pt") for d in dirs]
    if ensemble:
        chosen = loaded
    else:
        if fold is None:
            k = int(np.argmin([c["best_val_loss"] for _, c in loaded]))
        else:
            ks = [c["fold"] for _, c in loaded]
            if fold not in ks:
                raise ValueError(f"Expected '--fold' to be one of {ks}, but got {fold}.")
            k = ks.index(fold)
        chosen = [loaded[k]]
    module = ExportModule([m for ms, _ in chosen for m in ms]).eval()
    ckpt0 = chosen[0][1]
    names = module.input_names
    dyn = {n: {0: "batch"} for n in names + module.output_names}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(example_inputs(module, 2)),
                tmp,
                dynamo=False,
                input_names=names,
                output_names=module.output_names,
                dynamic_axes=dyn,
                opset_version=OPSET,
                do_constant_folding=True,
            )
        parity = check_parity(module, tmp)
        worst = max(parity.values())
        if not worst <= PARITY_TOL:
            raise RuntimeError(
                f"ONNX parity check failed: max abs difference {worst:.2e} > "
                f"{PARITY_TOL:.0e} ({parity}); the model was not written."
            )
        _write_metadata(tmp, run, module, [c for _, c in chosen], ckpt0, parity, ensemble)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ExportReport(
        out,
        [int(c["fold"]) for _, c in chosen],
        parity,
        names,
        module.output_names,
        out.stat().st_size,
    )


def _write_metadata(
    path: str,
    run: Path,
    module: ExportModule,
    ckpts: list[dict],
    ckpt0: dict,
    parity: dict,
    ensemble: bool,
) -> None:
    import onnx

    model = onnx.load(path)
    edges = [
        [int(s), int(d), GROUPS[g]]
        for s, d, g in zip(GRAPH.src, GRAPH.dst, GRAPH.group, strict=True)
    ]
    meta = {
        "producer": "arnis-suite trainer export",
        "model": module.models[0].variant,
        "class_names": json.dumps(list(ckpt0["classes"])),
        "taxonomy": ckpt0["taxonomy"],
        "keypoint_names": json.dumps(list(layout.KEYPOINT_NAMES)),
        "skeleton": json.dumps([list(e) for e in layout.SKELETON]),
        "graph_edges": json.dumps(
            {
                "edges": edges,
                "weapon_src_slots": GRAPH.weapon_src_slots.tolist(),
                "weapon_dst_slots": GRAPH.weapon_dst_slots.tolist(),
                "weapon_rule": "slots hold the left side; add 1 to the "
                "wrist/elbow index when the right wrist is the weapon hand",
            }
        ),
        "normalisation": json.dumps(normalisation_spec()),
        "crop_size": str(CROP_SIZE),
        "inputs": json.dumps(module.input_names),
        "outputs": json.dumps(module.output_names),
        "folds": json.dumps([int(c["fold"]) for c in ckpts]),
        "ensemble": json.dumps(bool(ensemble)),
        "members": json.dumps(len(module.models)),
        "temperatures": json.dumps([round(float(m.temperature), 4) for m in module.models]),
        "calibrated": json.dumps(any(float(m.temperature) != 1.0 for m in module.models)),
        "run": str(run.resolve()),
        "parity_max_abs_diff": json.dumps({str(k): v for k, v in parity.items()}),
    }
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, path)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (values are strings, often JSON)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
