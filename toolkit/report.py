"""Outputs of ``toolkit validate``: text, JSON, CSV, HTML, and the findings file.

Terminal text, JSON, CSV, a self-contained HTML report, and the findings file the viewer reads:

* JSON: ``{"version": 1, "summary": {...}, "findings": [...]}``, validated against
  ``schemas/validation_report.schema.json`` before it is written.
* CSV: one row per finding, the same fields (``keypoints`` joined with ``;``).
* HTML: one file, inline CSS, plots as base64 PNGs: counts per check, a histogram per measured
  quantity with its threshold, and the worst frames as thumbnails with the skeleton and stick
  drawn (labelled grip/tip in the colours of the legend). Nothing is fetched from the network.
* ``DATASET/validation.json`` (:data:`toolkit.validate.FINDINGS_FILE`): the JSON document, stored
  beside ``dataset.json`` so the viewer shows findings without re-running the checks.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from toolkit import layout
from toolkit.fileio import atomic_write_bytes, atomic_write_text, read_json
from toolkit.schema import validate
from toolkit.stick.image import iter_frames as _frames
from toolkit.validate import FINDINGS_FILE, SEVERITIES, Report, findings_records

FORMATS = ("text", "json", "csv", "html")
CSV_COLUMNS = (
    "code",
    "category",
    "severity",
    "file_name",
    "video",
    "frame_index",
    "ann_id",
    "image_id",
    "keypoints",
    "value",
    "threshold",
    "message",
)


# ---------------------------------------------------------------------- text / json / csv
def text_summary(report: Report, fail_on: str = "error", limit: int = 15) -> str:
    """A short terminal summary: counts per check and severity, notes, the first findings."""
    s = report.summary
    sev = s.get("by_severity", {})
    lines = [
        f"{s.get('n_annotations', 0)} annotations in {s.get('n_images', 0)} images/frames"
        f" ({s.get('n_videos', 0)} videos): {s.get('n_findings', 0)} findings — "
        f"{sev.get('error', 0)} errors, {sev.get('warning', 0)} warnings, "
        f"{sev.get('info', 0)} info."
    ]
    by_code = s.get("by_code", {})
    sev_code = s.get("severity_by_code", {})
    if by_code:
        width = max(len(c) for c in by_code)
        for code in sorted(by_code, key=lambda c: (-SEVERITIES.index(sev_code.get(c, "info")), c)):
            lines.append(f"  {code:<{width}}  {sev_code.get(code, ''):<7}  {by_code[code]:>7}")
    for note in s.get("notes", []):
        lines.append(f"note: {note}")
    f = report.findings
    if len(f):
        rank = f["severity"].map({k: i for i, k in enumerate(SEVERITIES)})
        top = f.assign(_r=rank).sort_values(["_r", "value"], ascending=[False, False]).head(limit)
        lines.append(f"First {len(top)} findings (most severe first):")
        for rec in findings_records(top.drop(columns="_r")):
            where = rec["file_name"] or (
                f"{rec['video']}#{rec['frame_index']}" if rec["video"] else "(data set)"
            )
            if rec["video"]:
                where = f"{rec['video']}#{rec['frame_index']}"
            val = "" if rec["value"] is None else f" value={rec['value']:g}"
            thr = "" if rec["threshold"] is None else f" threshold={rec['threshold']:g}"
            kps = f" [{','.join(rec['keypoints'])}]" if rec["keypoints"] else ""
            lines.append(f"  {rec['severity']:<7} {rec['code']:<24} {where}{kps}{val}{thr}")
    verdict = "FAIL" if report.fails(fail_on) else "ok"
    lines.append(f"--fail-on {fail_on}: {verdict}")
    return "\n".join(lines)


def to_json_bytes(report: Report, validate_schema: bool = True) -> bytes:
    """The JSON document (checked against ``schemas/validation_report.schema.json``)."""
    doc = report.to_dict()
    if validate_schema:
        validate(doc, "validation_report")
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)


def to_csv_text(report: Report) -> str:
    """One CSV row per finding (``keypoints`` joined with ``;``)."""
    recs = findings_records(report.findings)
    df = pd.DataFrame(recs, columns=[*CSV_COLUMNS, "proposal"])
    if len(df):
        df["keypoints"] = df["keypoints"].map(lambda k: ";".join(k))
        df["proposal"] = df["proposal"].map(
            lambda p: orjson.dumps(p).decode() if isinstance(p, dict) else None
        )
        df["frame_index"] = df["frame_index"].astype("Int64")
        df["ann_id"] = df["ann_id"].astype("Int64")
        df["image_id"] = df["image_id"].astype("Int64")
    return df.to_csv(index=False)


def read_csv_records(path: str | Path) -> list[dict]:
    """Read a findings CSV back into records shaped like the JSON ``findings`` entries."""
    df = pd.read_csv(
        path,
        dtype={
            "file_name": object,
            "video": object,
            "keypoints": object,
            "message": object,
            "proposal": object,
        },
    )
    out = []
    for rec in df.to_dict("records"):
        r = {k: (None if (isinstance(v, float) and np.isnan(v)) else v) for k, v in rec.items()}
        for k in ("frame_index", "ann_id", "image_id"):
            r[k] = None if r[k] is None else int(r[k])
        for k in ("value", "threshold"):
            r[k] = None if r[k] is None else float(r[k])
        r["keypoints"] = [k for k in (r["keypoints"] or "").split(";") if k]
        prop = r.pop("proposal", None)
        if isinstance(prop, str) and prop:
            r["proposal"] = orjson.loads(prop)
        out.append(r)
    return out


def write_findings_file(report: Report, dataset_dir: str | Path) -> Path:
    """Store the JSON document as ``DATASET/validation.json`` (atomically) for the viewer."""
    path = Path(dataset_dir) / FINDINGS_FILE
    atomic_write_bytes(path, to_json_bytes(report))
    return path


def read_findings_file(dataset_dir: str | Path) -> tuple[list[dict], Path | None]:
    """Read ``DATASET/validation.json``: the one reader of the findings file.

    Args:
        dataset_dir: The dataset folder.

    Returns:
        The findings (dicts, as :func:`findings_records` wrote them) and the file's path; an
        empty list and None when there is no readable file (a warning names an unreadable one).
    """
    path = Path(dataset_dir) / FINDINGS_FILE
    doc = read_json(path)
    if doc is None:
        return [], None
    entries = doc.get("findings") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        return [], path
    return [e for e in entries if isinstance(e, dict)], path


# ---------------------------------------------------------------------- html
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4;text-align:left}.error{color:#b00020;font-weight:600}
.warning{color:#a36100}.info{color:#555}.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px;width:260px;font-size:12px}
.card img{width:256px;height:auto;display:block}.muted{color:#777;font-size:12px}
.plots img{max-width:420px;margin:4px;border:1px solid #eee}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(report: Report, max_plots: int = 16) -> list[tuple[str, str]]:
    """``(title, base64 png)``: counts per check, then one histogram per measure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = []
    by_code = report.summary.get("by_code", {})
    if by_code:
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(by_code) + 1))
        codes = sorted(by_code)
        ax.barh(codes, [by_code[c] for c in codes], color="#4c78a8")
        ax.set_xlabel("findings")
        ax.invert_yaxis()
        out.append(("Findings per check", _png(fig)))
    for name, (values, thr) in list(report.measures.items())[:max_plots]:
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if len(v) < 2:
            continue
        fig, ax = plt.subplots(figsize=(5, 2.6))
        hi = np.percentile(v, 99.5)
        if thr is not None and np.isfinite(thr):
            hi = max(hi, thr * 1.05)
        lo = float(v.min())
        if hi - lo < 1e-6 * (abs(hi) + 1):  # (nearly) constant: one bar
            ax.hist(v, bins=1, range=(lo - 0.5, lo + 0.5), color="#72b7b2")
        else:
            ax.hist(np.clip(v, None, hi), bins=50, range=(lo, hi), color="#72b7b2")
        if thr is not None and np.isfinite(thr):
            ax.axvline(thr, color="#b00020", lw=1.5, label=f"threshold {thr:.3g}")
            ax.legend(fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_yscale("log")
        out.append((name, _png(fig)))
    return out


def draw_pose(img: np.ndarray, kp: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Draw the 19-point skeleton (body grey-green, stick in red/orange) on a BGR image."""
    import cv2

    out = img.copy()
    xy = kp[:, :2] * scale
    ok = (kp[:, 2] > 0) & np.isfinite(xy).all(1)
    t = max(1, int(round(1.5 * scale)))
    for a, b in layout.COCO_SKELETON:
        if ok[a] and ok[b]:
            cv2.line(
                out,
                tuple(np.round(xy[a]).astype(int)),
                tuple(np.round(xy[b]).astype(int)),
                (60, 200, 60),
                t,
                cv2.LINE_AA,
            )
    if ok[layout.GRIP] and ok[layout.TIP]:
        cv2.line(
            out,
            tuple(np.round(xy[layout.GRIP]).astype(int)),
            tuple(np.round(xy[layout.TIP]).astype(int)),
            (0, 0, 230),
            t + 1,
            cv2.LINE_AA,
        )
    for i in np.flatnonzero(ok):
        col = (
            (0, 140, 255)
            if i == layout.GRIP
            else (0, 0, 230)
            if i == layout.TIP
            else (240, 240, 240)
        )
        cv2.circle(out, tuple(np.round(xy[i]).astype(int)), t + 1, col, -1, cv2.LINE_AA)
    return out


def draw_proposal(img: np.ndarray, prop: dict, kp: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Draw a finding's proposed stick (cyan, grip and tip as rings) over ``img`` (BGR).

    Args:
        img: The picture (drawn on in place and returned).
        prop: The finding's ``proposal`` (``{"keypoints": [[index, x, y], ...], ...}``).
        kp: ``(19, 3)`` the labelled points in the picture's coordinates (unscaled); a point the
            proposal does not move stays where it is labelled.
        scale: Picture pixels per keypoint pixel.
    """
    import cv2

    xy = kp[:, :2].astype(np.float64).copy()
    for k, x, y in prop.get("keypoints", []):
        if int(k) in (layout.GRIP, layout.TIP):
            xy[int(k)] = (float(x), float(y))
    g, t = xy[layout.GRIP] * scale, xy[layout.TIP] * scale
    if not (np.isfinite(g).all() and np.isfinite(t).all()):
        return img
    th = max(1, int(round(1.5 * scale)))
    gi, ti = tuple(np.round(g).astype(int)), tuple(np.round(t).astype(int))
    cv2.line(img, gi, ti, (230, 220, 0), th, cv2.LINE_AA)
    for p in (gi, ti):
        cv2.circle(img, p, th + 3, (230, 220, 0), 1, cv2.LINE_AA)
    return img


def _first_proposals(f: pd.DataFrame) -> dict[int, dict]:
    """Row -> its first finding's proposal (rows without one are absent)."""
    if "proposal" not in f.columns:
        return {}
    has = f[f["proposal"].map(lambda p: isinstance(p, dict))]
    return {int(r): p for r, p in zip(has["row"], has["proposal"], strict=True)}


def _thumbnails(report: Report, ds, n: int = 12, size: int = 256) -> list[dict]:
    """The worst frames (most severe, then largest value) with the pose drawn on them."""
    import cv2

    f = report.findings
    f = f[f["row"] >= 0]
    if not len(f) or ds is None:
        return []
    rank = f["severity"].map({k: i for i, k in enumerate(SEVERITIES)})
    worst = (
        f.assign(_r=rank)
        .sort_values(["_r", "value"], ascending=[False, False])
        .drop_duplicates("row")
        .head(n)
    )
    rows = worst["row"].to_numpy(dtype=int)
    codes = f.groupby("row")["code"].agg(lambda c: ", ".join(sorted(set(c))))
    props = _first_proposals(f[f["row"].isin(rows)].iloc[::-1])
    cards = {}
    for chunk, img in _frames(ds, rows, color=True):  # one iteration per image / frame
        for r in chunk:
            kp = ds.keypoints[r]
            h, w = img.shape[:2]
            xy = kp[:, :2][np.isfinite(kp[:, :2]).all(1)]
            if len(xy):
                lo = np.maximum(xy.min(0) - 30, 0).astype(int)
                hi = np.minimum(xy.max(0) + 30, [w, h]).astype(int)
            else:
                lo, hi = np.array([0, 0]), np.array([w, h])
            crop = img[lo[1] : max(hi[1], lo[1] + 1), lo[0] : max(hi[0], lo[0] + 1)]
            k2 = kp.copy()
            k2[:, :2] -= lo
            sc = size / max(crop.shape[:2])
            crop = cv2.resize(
                crop, (max(1, int(crop.shape[1] * sc)), max(1, int(crop.shape[0] * sc)))
            )
            pic = draw_pose(crop, k2, sc)
            if int(r) in props:
                prop = props[int(r)]
                moved = {"keypoints": [[k, x - lo[0], y - lo[1]] for k, x, y in prop["keypoints"]]}
                pic = draw_proposal(pic, moved, k2, sc)
            ok, png = cv2.imencode(".png", pic)
            if ok:
                cards[int(r)] = base64.b64encode(png.tobytes()).decode("ascii")
    out = []
    for rec, r in zip(findings_records(worst.drop(columns="_r")), rows, strict=True):
        where = (
            rec["file_name"] if not rec["video"] else f"{rec['video']} frame {rec['frame_index']}"
        )
        out.append(
            {
                "where": where,
                "png": cards.get(int(r)),
                "codes": codes.get(r, ""),
                "severity": rec["severity"],
            }
        )
    return out


def to_html(
    report: Report,
    ds=None,
    title: str = "Validation report",
    max_rows: int = 1000,
    n_thumbs: int = 12,
) -> str:
    """A self-contained HTML page (inline CSS, base64 PNG plots and thumbnails)."""
    s = report.summary
    esc = html.escape
    sev = s.get("by_severity", {})
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>",
        f"<p>{s.get('n_annotations', 0)} annotations in {s.get('n_images', 0)} images/frames"
        f", {s.get('n_videos', 0)} videos. <span class='error'>{sev.get('error', 0)} "
        f"errors</span>, <span class='warning'>{sev.get('warning', 0)} warnings</span>, "
        f"<span class='info'>{sev.get('info', 0)} info</span>.</p>",
    ]
    for note in s.get("notes", []):
        parts.append(f"<p class='muted'>Note: {esc(str(note))}</p>")
    parts.append("<h2>Checks</h2><table><tr><th>code</th><th>severity</th><th>findings</th></tr>")
    for code, cnt in sorted(s.get("by_code", {}).items()):
        sv = s.get("severity_by_code", {}).get(code, "info")
        parts.append(f"<tr><td>{esc(code)}</td><td class='{sv}'>{sv}</td><td>{cnt}</td></tr>")
    parts.append("</table>")
    angles = s.get("stick_forearm_angle_by_stance") or {}
    if angles:
        parts.append(
            "<h2>Stick angle to the forearm, per stance (measured, not assumed)</h2>"
            "<table><tr><th>stance</th><th>median (deg)</th><th>frames</th></tr>"
        )
        for k, v in angles.items():
            parts.append(f"<tr><td>{esc(k)}</td><td>{v['median_deg']}</td><td>{v['n']}</td></tr>")
        parts.append("</table>")
    plots = _plots(report)
    if plots:
        parts.append("<h2>Distributions</h2><div class='plots'>")
        for name, png in plots:
            parts.append(
                f"<img alt='{esc(name)}' title='{esc(name)}' src='data:image/png;base64,{png}'>"
            )
        parts.append("</div>")
    thumbs = _thumbnails(report, ds, n_thumbs)
    if thumbs:
        parts.append(
            "<h2>Worst frames</h2><p class='muted'>Skeleton green, stick red (grip "
            "orange); a proposed fix in cyan (Enter accepts it in the viewer).</p>"
            "<div class='grid'>"
        )
        for t in thumbs:
            img = (
                f"<img src='data:image/png;base64,{t['png']}'>"
                if t["png"]
                else "<p class='muted'>(image not available)</p>"
            )
            parts.append(
                f"<div class='card'>{img}<div class='{t['severity']}'>"
                f"{esc(t['codes'])}</div><div>{esc(str(t['where']))}</div></div>"
            )
        parts.append("</div>")
    recs = findings_records(report.findings.head(max_rows))
    parts.append(
        f"<h2>Findings ({len(report.findings)}"
        f"{', first ' + str(max_rows) if len(report.findings) > max_rows else ''})"
        "</h2><table><tr><th>severity</th><th>code</th><th>where</th><th>keypoints</th>"
        "<th>value</th><th>threshold</th><th>message</th></tr>"
    )
    for r in recs:
        where = r["file_name"] or (
            f"{r['video']} #{r['frame_index']}" if r["video"] else "(data set)"
        )
        if r["video"]:
            where = f"{r['video']} #{r['frame_index']}"
        val = "" if r["value"] is None else f"{r['value']:.4g}"
        thr = "" if r["threshold"] is None else f"{r['threshold']:.4g}"
        parts.append(
            f"<tr><td class='{r['severity']}'>{r['severity']}</td><td>{esc(r['code'])}</td>"
            f"<td>{esc(str(where))}</td><td>{esc(', '.join(r['keypoints']))}</td>"
            f"<td>{val}</td><td>{thr}</td><td>{esc(r['message'])}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "".join(parts)


def write_report(
    report: Report, out_dir: str | Path, formats: tuple[str, ...] = FORMATS, ds=None
) -> list[Path]:
    """Write the report files into ``out_dir``.

    ``report.txt``, ``report.json``, ``findings.csv``, ``report.html``, as asked.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"Expected a report format in {list(FORMATS)}, but got {fmt!r}.")
        if fmt == "text":
            p = out / "report.txt"
            atomic_write_text(p, text_summary(report) + "\n")
        elif fmt == "json":
            p = out / "report.json"
            atomic_write_bytes(p, to_json_bytes(report))
        elif fmt == "csv":
            p = out / "findings.csv"
            atomic_write_text(p, to_csv_text(report))
        else:
            p = out / "report.html"
            atomic_write_text(p, to_html(report, ds))
        written.append(p)
    return written
