"""Fast CPU runtimes for an ultralytics pose model: OpenVINO and onnxruntime, with an export cache.

``toolkit detect --runtime`` chooses how the model runs:

* ``torch``: the ``.pt`` through ultralytics' own ``predict`` (the reference);
* ``openvino``: an OpenVINO IR (``*_openvino_model/`` folder or its ``.xml``), or a ``.pt``
  exported to one once and cached (:func:`exported`);
* ``onnx``: an ``.onnx`` through onnxruntime, or a ``.pt`` exported to one once and cached;
* ``auto``: the fastest one installed for the model given: OpenVINO for a ``.pt`` when the
  ``openvino`` package is installed (``pip install arnis-suite[openvino]``), else torch; an
  exported model runs on its own runtime.

The exported runtimes do not go through ultralytics' predictor: frames are letterboxed exactly as
ultralytics does (its ``LetterBox``: the smallest stride-multiple rectangle for a dynamic model,
as the ``.pt`` gets, or the model's fixed square), batched per frame size, run, and decoded by
ultralytics' own ``non_max_suppression``, ``scale_boxes`` and ``scale_coords``. So the same model
gives the same people as ultralytics' ``predict``, up to the runtime's arithmetic (OpenVINO uses
bfloat16 on CPUs that have it, e.g. AVX512-BF16 or AMX; see ``docs/detect_evaluate.md`` for the
measured keypoint AP).

Exports are cached under ``$ARNIS_EXPORT_CACHE`` (default: ``exports/`` in ultralytics' config
directory, see :func:`toolkit.ultra.prepare`), named by the ``.pt``'s content hash and the
exporting versions, and written through a staging folder renamed into place, so a killed export
never leaves a half model and two processes exporting at once both end with a whole one. A
dynamic-shape export is cached; it is compiled for each frame size and batch actually used.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import InputError
from toolkit.ultra import openvino_xml

#: Values of ``DetectOptions.runtime`` / ``toolkit detect --runtime``.
RUNTIMES = ("auto", "torch", "openvino", "onnx")
#: Model formats and the runtimes that can run them directly.
NATIVE_RUNTIME = {"pt": "torch", "onnx": "onnx", "openvino": "openvino"}
#: The suffix ultralytics gives an OpenVINO export folder.
OPENVINO_SUFFIX = "_openvino_model"
#: The NMS settings of ultralytics' predict defaults.
NMS_IOU = 0.7
MAX_DET = 300

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- model output
@dataclass
class Poses:
    """A model's people in one frame.

    Attributes:
        kpts: ``(n, K, 3)`` ``x, y, confidence`` in pixels.
        boxes: ``(n, 4)`` ``x1, y1, x2, y2``.
        conf: ``(n,)`` box confidences.
    """

    kpts: np.ndarray
    boxes: np.ndarray
    conf: np.ndarray

    @classmethod
    def from_result(cls, r: Any) -> Poses:
        """From an ultralytics ``Results`` of a pose model."""
        if r.keypoints is None or r.boxes is None or len(r.boxes) == 0:
            k = 0 if r.keypoints is None else int(r.keypoints.data.shape[1])
            return cls(np.zeros((0, k, 3)), np.zeros((0, 4)), np.zeros(0))
        kp = r.keypoints.data.cpu().numpy().astype(np.float64)
        if kp.shape[-1] == 2:  # a model without keypoint confidences
            kp = np.concatenate([kp, np.ones(kp.shape[:-1] + (1,))], -1)
        return cls(
            kp,
            r.boxes.xyxy.cpu().numpy().astype(np.float64),
            r.boxes.conf.cpu().numpy().astype(np.float64),
        )


def openvino_available() -> bool:
    """Whether the ``openvino`` package is installed (``pip install arnis-suite[openvino]``)."""
    return importlib.util.find_spec("openvino") is not None


def model_format(path: str | Path) -> str:
    """``"pt"``, ``"onnx"`` or ``"openvino"`` for a resolved model path (an IR's ``.xml``)."""
    suffix = Path(path).suffix.lower()
    return {".pt": "pt", ".onnx": "onnx", ".xml": "openvino"}[suffix]


def choose_runtime(fmt: str, runtime: str = "auto") -> str:
    """The runtime to use for a model of format ``fmt`` (see the module docstring).

    Raises:
        ValueError: An unknown runtime, or one that cannot run ``fmt`` (an exported model runs
            only on its own runtime; export another from the ``.pt``).
        InputError: ``openvino`` asked for but the package is not installed.
    """
    if runtime not in RUNTIMES:
        raise ValueError(
            f"Expected '--runtime' to be one of {', '.join(RUNTIMES)}, but got {runtime!r}."
        )
    if runtime == "auto":
        if fmt == "pt":
            return "openvino" if openvino_available() else "torch"
        return NATIVE_RUNTIME[fmt]
    if fmt != "pt" and runtime != NATIVE_RUNTIME[fmt]:
        raise ValueError(
            f"Expected '--runtime' to be {NATIVE_RUNTIME[fmt]} or auto for a .{fmt} model, but got "
            f"{runtime!r}; pass the .pt to let it be exported for {runtime}."
        )
    if runtime == "openvino" and not openvino_available():
        raise InputError(
            "Expected the 'openvino' package for '--runtime openvino', but it is not installed: "
            "`pip install arnis-suite[openvino]` (or `pip install openvino`) installs it; "
            "'--runtime auto' falls back to torch without it."
        )
    return runtime


def model_for(path: str | Path, runtime: str = "auto", gpu: bool = False) -> tuple[str, Path]:
    """The runtime and the model file to run for a resolved model path, exporting if needed.

    What :class:`toolkit.detect.Detector` runs; a driver that hands many tasks the same ``.pt``
    may call it first so the export is made once (tasks exporting at once are safe, only slower).

    Args:
        path: A resolved ``.pt``, ``.onnx`` or OpenVINO ``.xml``
            (:func:`toolkit.ultra.resolve_weights`).
        runtime: One of :data:`RUNTIMES`.
        gpu: The model will run on a GPU: ``auto`` then keeps a ``.pt`` on torch.

    Returns:
        ``(runtime, model file)``: the ``.pt`` itself for torch, else the ``.xml``/``.onnx``.
    """
    path = Path(path)
    fmt = model_format(path)
    rt = choose_runtime(fmt, "torch" if runtime == "auto" and fmt == "pt" and gpu else runtime)
    if rt == "torch" or fmt != "pt":
        return rt, path
    return rt, exported(path, rt)


# ---------------------------------------------------------------------------- export cache
def cache_dir() -> Path:
    """Where exported models are cached: ``$ARNIS_EXPORT_CACHE`` or ultralytics' config dir."""
    env = os.environ.get("ARNIS_EXPORT_CACHE")
    if env:
        return Path(env).expanduser()
    from toolkit import ultra

    return ultra.prepare() / "exports"


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def export_key(pt: Path, fmt: str) -> str:
    """The cache name of ``pt`` exported to ``fmt``: stem, content hash and exporter versions."""
    import importlib.metadata as md

    versions = f"u{md.version('ultralytics')}"
    if fmt == "openvino":
        versions += f"-ov{md.version('openvino')}"
    return f"{pt.stem}-{file_digest(pt)}-{versions}"


def exported(pt: str | Path, fmt: str) -> Path:
    """``pt`` exported to ``fmt`` (``openvino`` or ``onnx``, dynamic shapes), from the cache.

    The first call exports (seconds; ultralytics, offline) into a staging folder beside the
    cache entry and renames it into place; later calls, in any process, reuse it.

    Returns:
        The cached ``.xml`` (OpenVINO) or ``.onnx``.
    """
    from toolkit import ultra
    from toolkit.fileio import remove_stale

    pt = Path(pt)
    cache = cache_dir()
    key = export_key(pt, fmt)
    target = cache / (f"{key}{OPENVINO_SUFFIX}" if fmt == "openvino" else f"{key}.onnx")
    if target.exists():
        return openvino_xml(target) if fmt == "openvino" else target
    cache.mkdir(parents=True, exist_ok=True)
    remove_stale(cache, target.name)
    stage = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".partial", dir=cache)
    )
    try:
        local = stage / "model.pt"
        shutil.copyfile(pt, local)  # ultralytics writes its export beside the weights
        log.info("exporting %s to %s once (cached in %s)", pt.name, fmt, cache)
        with _quiet_ultralytics():
            made = Path(ultra.yolo(local).export(format=fmt, dynamic=True, imgsz=640, batch=1))
        with contextlib.suppress(OSError):  # another process may have finished first: keep it
            os.rename(made, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return openvino_xml(target) if fmt == "openvino" else target


@contextlib.contextmanager
def _quiet_ultralytics() -> Any:
    """Silence ultralytics' export log and torch's tracer warnings for the block."""
    logger = logging.getLogger("ultralytics")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------------------- model metadata
@dataclass
class ModelInfo:
    """What an exported model's ultralytics metadata says about it.

    Attributes:
        kpt_shape: ``(keypoints, 2 or 3)``.
        stride: The model's largest stride (letterbox padding multiple).
        dynamic: Whether any input size (and batch) works; else ``imgsz`` and ``batch`` only.
        imgsz: ``(height, width)`` it was exported at.
        batch: The batch it was exported at.
        task: ultralytics' task (``pose`` expected).
    """

    kpt_shape: tuple[int, int]
    stride: int
    dynamic: bool
    imgsz: tuple[int, int]
    batch: int
    task: str


def _info_from(meta: dict, path: Path) -> ModelInfo:
    """:class:`ModelInfo` from ultralytics' metadata dict (values may be strings in ONNX)."""
    import ast

    def val(key: str, default: Any) -> Any:
        v = meta.get(key, default)
        return ast.literal_eval(v) if isinstance(v, str) and key != "task" else v

    if "kpt_shape" not in meta:
        raise InputError(
            "Expected a pose model exported by ultralytics (its metadata names kpt_shape), but "
            "this one has none.",
            path,
        )
    imgsz = val("imgsz", [640, 640])
    imgsz = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    args = val("args", {}) or {}
    dyn = meta.get("dynamic", args.get("dynamic", False) if isinstance(args, dict) else False)
    return ModelInfo(
        kpt_shape=tuple(val("kpt_shape", [17, 3])),
        stride=int(max(np.atleast_1d(val("stride", 32)))),
        dynamic=dyn in (True, "True", "true"),
        imgsz=(int(imgsz[0]), int(imgsz[1])),
        batch=int(val("batch", 1)),
        task=str(meta.get("task", "pose")),
    )


def read_info(path: Path) -> ModelInfo:
    """The metadata of an exported ``.onnx`` or OpenVINO ``.xml``."""
    if model_format(path) == "onnx":
        import onnx

        m = onnx.load(str(path), load_external_data=False)
        return _info_from({p.key: p.value for p in m.metadata_props}, path)
    import yaml

    meta = yaml.safe_load((path.parent / "metadata.yaml").read_text()) or {}
    return _info_from(meta, path.parent / "metadata.yaml")


# ---------------------------------------------------------------------------- runners
class ExportedModel:
    """An exported pose model (OpenVINO or ONNX) run outside ultralytics' predictor.

    Args:
        path: The ``.xml`` or ``.onnx``.
        imgsz: Inference size (long side); a fixed-size export must have been exported at it.
        conf: Minimum person box confidence.
        batch: Frames per model call (frames of one size are stacked).
        threads: Inference threads; 0 = the runtime's default (one per core). An engine running
            several tasks on one machine passes its share of the cores.
    """

    def __init__(
        self,
        path: str | Path,
        imgsz: int = 640,
        conf: float = 0.25,
        batch: int = 1,
        threads: int = 0,
    ):
        self.path = Path(path)
        self.format = model_format(self.path)
        self.info = read_info(self.path)
        if self.info.task != "pose":
            raise InputError(
                f"Expected a pose model, but {self.path.name} is a {self.info.task} model.",
                self.path,
            )
        if not self.info.dynamic and max(self.info.imgsz) != imgsz:
            raise ValueError(
                f"Expected '--imgsz' to be {max(self.info.imgsz)} (the size {self.path.name} was "
                f"exported at), but got {imgsz}; re-export with dynamic=True or pass "
                f"--imgsz {max(self.info.imgsz)}."
            )
        self.imgsz = imgsz
        self.conf = conf
        self.batch = max(1, int(batch)) if self.info.dynamic else self.info.batch
        self.threads = max(0, int(threads))
        self._compiled: dict[tuple[int, int, int], Any] = {}
        self._session: Any = None
        self._letterbox: dict[tuple[int, int], Any] = {}

    def __repr__(self) -> str:
        return (
            f"ExportedModel('{self.path}', format={self.format}, imgsz={self.imgsz}, "
            f"batch={self.batch}, threads={self.threads})"
        )

    # -- preprocessing
    def letterbox(self, image: np.ndarray) -> np.ndarray:
        """``image`` (BGR) resized and padded as ultralytics' predictor does for this model."""
        from ultralytics.data.augment import LetterBox

        key = image.shape[:2]
        lb = self._letterbox.get(key)
        if lb is None:
            lb = LetterBox(
                self.info.imgsz if not self.info.dynamic else (self.imgsz, self.imgsz),
                auto=self.info.dynamic,
                stride=self.info.stride,
            )
            self._letterbox[key] = lb
        return lb(image=image)

    # -- inference
    def _openvino(self, n: int, h: int, w: int) -> Any:
        """The OpenVINO model compiled for input ``(n, 3, h, w)`` (cached)."""
        key = (n, h, w)
        if key not in self._compiled:
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(self.path), str(self.path.with_suffix(".bin")))
            if self.info.dynamic:
                model.reshape([n, 3, h, w])
            config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
            if self.threads:
                # A share of the cores (an engine's task): several processes run side by side,
                # and OpenVINO's default pinning would put all of their threads on core 0.
                config["INFERENCE_NUM_THREADS"] = self.threads
                config["ENABLE_CPU_PINNING"] = False
            self._compiled[key] = core.compile_model(model, "CPU", config)
        return self._compiled[key]

    def _onnx(self) -> Any:
        """The onnxruntime session (created once)."""
        if self._session is None:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = self.threads  # 0: one per core
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Busy-waiting threads burn CPU the decode thread (and other jobs) could use.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                str(self.path), so, providers=["CPUExecutionProvider"]
            )
        return self._session

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Raw model output ``(n, 4 + 1 + K*D, anchors)`` for an input ``(n, 3, h, w)`` in 0..1."""
        if self.format == "openvino":
            compiled = self._openvino(*x.shape[:1], *x.shape[2:])
            return next(iter(compiled(x).values()))
        sess = self._onnx()
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]

    def _run(self, boxed: list[np.ndarray]) -> np.ndarray:
        """Model output for same-shaped letterboxed frames, in chunks of the model's batch.

        A fixed-batch model pads a short chunk with blank frames. OpenVINO compiles one model per
        input shape, so a short chunk of at least half the batch is padded too, and a shorter one
        runs frame by frame: at most two compiled shapes per frame size, at most twice the work.
        """
        outs = []
        for i in range(0, len(boxed), self.batch):
            chunk = boxed[i : i + self.batch]
            n = len(chunk)
            x = np.stack(chunk)[..., ::-1].transpose(0, 3, 1, 2)
            x = np.ascontiguousarray(x).astype(np.float32) / 255
            if n == self.batch or (self.info.dynamic and self.format == "onnx"):
                outs.append(self.infer(x))
            elif not self.info.dynamic or 2 * n >= self.batch:
                pad = np.zeros((self.batch - n, *x.shape[1:]), np.float32)
                outs.append(self.infer(np.concatenate([x, pad]))[:n])
            else:
                outs.extend(self.infer(x[j : j + 1]) for j in range(n))
        return np.concatenate(outs)

    def predict(self, images: list[np.ndarray]) -> list[Any]:
        """:class:`Poses` for BGR frames, in order."""
        boxed = [self.letterbox(im) for im in images]
        out: list[Any] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, b in enumerate(boxed):
            groups.setdefault(b.shape, []).append(i)
        for shape, idx in groups.items():
            raw = self._run([boxed[i] for i in idx])
            for i, poses in zip(
                idx, self._decode(raw, shape[:2], [images[i] for i in idx]), strict=True
            ):
                out[i] = poses
        return out

    def _decode(self, raw: np.ndarray, hw: tuple[int, int], images: list[np.ndarray]) -> list[Any]:
        """Apply ultralytics' NMS and rescaling, as its ``PosePredictor`` does.

        The anchors below ``conf`` are dropped first, in numpy (NMS drops them too): torch's
        maximum over the class rows of the whole ``(n, 56, anchors)`` output cost more than the
        NMS itself. A zero-score anchor is added when exactly six remain, since ultralytics
        takes a six-column input for an end-to-end model's output.
        """
        import torch
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        k, dim = self.info.kpt_shape
        nc = raw.shape[1] - 4 - k * dim
        score = raw[:, 4 : 4 + nc].max(axis=1)  # (n, anchors)
        res = []
        for j, im in enumerate(images):
            cand = raw[j : j + 1, :, score[j] > self.conf]
            if cand.shape[-1] == 6:  # ultralytics reads 6 columns as an end-to-end output
                cand = np.concatenate([cand, np.zeros((*cand.shape[:2], 1), cand.dtype)], -1)
            (d,) = non_max_suppression(
                torch.from_numpy(np.ascontiguousarray(cand, dtype=np.float32)),
                self.conf,
                NMS_IOU,
                max_det=MAX_DET,
                nc=nc,
            )
            if len(d) == 0:
                res.append(Poses(np.zeros((0, k, 3)), np.zeros((0, 4)), np.zeros(0)))
                continue
            boxes = ops.scale_boxes(hw, d[:, :4].clone(), im.shape)
            kpts = ops.scale_coords(hw, d[:, 6:].reshape(len(d), k, dim).clone(), im.shape)
            kp = kpts.numpy().astype(np.float64)
            if dim == 2:
                kp = np.concatenate([kp, np.ones(kp.shape[:-1] + (1,))], -1)
            res.append(
                Poses(kp, boxes.numpy().astype(np.float64), d[:, 4].numpy().astype(np.float64))
            )
        return res
