"""The viewer inside a napari window: layers, events, key bindings, autosave.

:class:`ArnisApp` adds to a napari viewer

* ``frames``: an Image layer over a lazy :class:`viewer.frames.FrameSource` (frames decoded on
  demand and ahead of the slider by a background thread, in a cache bounded in bytes), which
  gives the frame slider;
* ``lines``: one Vectors layer with the body bones and the stick (weapon wrist -> grip in
  orange, grip -> tip in yellow, violet while interpolated), redrawn while a point is dragged;
* ``keypoints``: a Points layer with the current frame's labelled points, coloured by keypoint,
  sized by confidence, bordered by state (red flagged, orange corrected, violet interpolated,
  green human);

The rules behind every edit live in :class:`viewer.session.EditSession`; this module only
translates napari events into them. It knows nothing of the dock: it announces what changed to
its ``listeners`` (:data:`EVENTS`), and :mod:`viewer.launch` wires the dock to them.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from toolkit import layout
from viewer import convert, keys
from viewer.frames import FrameSource
from viewer.review import FILTER_PROPOSAL
from viewer.session import EditSession, rigid_adjust

#: Autosave period in seconds (0 turns autosave off).
AUTOSAVE_S = 60.0
#: The dock follows a scrub this long after the last frame step (seconds).
DOCK_DELAY_S = 0.12
#: What the app announces to its listeners, ``fn(kind, index=None)``: anything shown changed;
#: the review-list filter (or what it matches) changed; review item ``index`` was marked done or
#: not; the dataset was reloaded (the review list may differ); the key help was asked for.
EVENTS = ("changed", "filter", "done", "reloaded", "help")


class ArnisApp:
    """One dataset under review in one napari viewer.

    Attributes:
        viewer: The napari viewer.
        session: The editing session (dataset, findings, undo, save).
        frames: The lazy frame array behind the image layer.
        points_layer: The keypoints of the current frame.
        lines_layer: Body bones and stick lines (see :meth:`line_segments`).
        frame: The current frame.
        unlocked: Whether body points may be dragged (grip and tip always may).
        rigid: Whether dragging the tip keeps the stick length (rotates about the grip).
        message: The last status message.
        listeners: Called as ``fn(kind, index=None)`` with one of :data:`EVENTS`.
    """

    def __init__(self, viewer, session: EditSession, autosave_s: float = AUTOSAVE_S):
        self.viewer = viewer
        self.session = session
        self.frame = -1
        self.unlocked = False
        self.rigid = False
        self.queue_filter = "all"
        self.message = ""
        self.listeners: list[Callable[..., None]] = []
        self._dock_timer = None
        self._sync = 0
        self._rows = np.zeros(0, np.int64)
        self._shown_features: tuple | None = None  # (the layer's table, the columns in it)
        self._lines: dict[str, tuple] = {}
        self.frames = FrameSource(session.ds)
        _, h, w, _ = self.frames.shape
        diag = math.hypot(h, w)
        self.point_size = max(5.0, 0.02 * diag)
        line = max(1.5, 0.006 * diag)
        empty_vec = np.zeros((0, 2, 3))
        self.image_layer = viewer.add_image(
            self.frames, name="frames", rgb=True, contrast_limits=(0, 255), multiscale=False
        )
        # Bones and stick in one Vectors layer (one slice and one draw per frame step instead
        # of two): the bones translucent through their colours' alpha, the stick drawn wider
        # (see _draw_lines).
        self.line_width = line
        self.lines_layer = viewer.add_vectors(
            empty_vec,
            ndim=3,
            name="lines",
            edge_color=convert.SKELETON_LINE_COLOR,
            edge_width=line,
            vector_style="line",
            opacity=1.0,
            projection_mode="none",
        )
        empty = convert.frame_points(
            session.ds,
            np.zeros(0, np.int64),
            0,
            np.zeros((0, layout.NUM_KEYPOINTS), bool),
            self.point_size,
        )
        self.points_layer = viewer.add_points(
            empty.data,
            ndim=3,
            name="keypoints",
            features=empty.features,
            size=self.point_size,
            opacity=1.0,
            border_width_is_relative=True,
        )
        _reuse_color_shader(viewer, self.lines_layer)
        _light_points_reset(viewer, self.points_layer)
        for layer in (self.image_layer, self.lines_layer):
            _steady_transform(viewer, layer)
        _steady_text(viewer, self.points_layer)
        # The layer-list icons stay as first drawn: a per-frame icon of a video shows nothing.
        for layer in (self.image_layer, self.lines_layer, self.points_layer):
            _freeze_thumbnail(layer)
        _quiet_layer_list(viewer)
        self.points_layer.mode = "select"
        self.points_layer.mouse_drag_callbacks.append(self._follow_drag)
        self.points_layer.events.mode.connect(self._keep_drag_last)
        self.points_layer.events.data.connect(self._on_points_data)
        self.points_layer.selected_data.events.items_changed.connect(self._enforce_lock)
        viewer.layers.selection.active = self.points_layer
        if viewer.dims.ndim == 3:
            viewer.dims.axis_labels = ("frame", "y", "x")
        viewer.dims.events.current_step.connect(self._on_step)
        # Also ahead of napari's own slicing (see _before_slice): each of our layers is then
        # sliced and drawn once per frame step instead of twice.
        _connect_first(viewer.dims.events.point, self._before_slice)
        # napari slices every layer twice per frame step (on the point and on the current
        # step, see _slice_once); the second time only when the first did not see this point.
        self._sliced_at: list = _slice_once(viewer) or [None]
        keys.bind(
            self,
            [viewer, self.points_layer, self.image_layer, self.lines_layer],
        )
        overlay = viewer.canvas.overlays.text
        overlay.visible = True
        overlay.font_size = 11
        overlay.position = "top_left"
        self._timer = None
        if autosave_s and autosave_s > 0:
            from qtpy.QtCore import QTimer

            self._timer = QTimer()
            self._timer.setInterval(int(autosave_s * 1000))
            self._timer.timeout.connect(self.autosave)
            self._timer.start()
        from qtpy.QtCore import QTimer

        self._dock_timer = QTimer()
        self._dock_timer.setSingleShot(True)
        self._dock_timer.setInterval(int(DOCK_DELAY_S * 1000))
        self._dock_timer.timeout.connect(self._catch_up)
        self.goto(session.first_flagged(), force=True)

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _syncing(self) -> Iterator[None]:
        """Layer updates made by the app itself (not edits by the user)."""
        self._sync += 1
        try:
            yield
        finally:
            self._sync -= 1

    def _notify(self, message: str | None = None, warn: bool = False) -> None:
        if message is not None:
            self.message = message
            if warn:
                from napari.utils.notifications import show_warning

                show_warning(message)
        self._update_overlay()
        if self._dock_timer is not None:
            self._dock_timer.stop()
        self._emit("changed")
        self._expect_jumps()

    def _expect_jumps(self) -> None:
        """Have the frames N and Shift-N would jump to decoded while the viewer is idle."""
        s = self.session
        targets = (s.next_flagged(self.frame, 1), s.next_flagged(self.frame, -1))
        self.frames.expect([t for t in targets if t is not None])

    def _emit(self, kind: str, index: int | None = None) -> None:
        """Announce ``kind`` (one of :data:`EVENTS`) to the listeners."""
        for fn in list(self.listeners):
            fn(kind, index)

    def _catch_up(self) -> None:
        """The deferred dock update (see :meth:`_notify_later`)."""
        try:
            self._notify()
        except RuntimeError:  # the window was closed meanwhile (its Qt widgets are gone)
            self._dock_timer = None

    def _notify_later(self) -> None:
        """After a plain frame step: the canvas caption now, the dock once scrubbing pauses.

        Repainting the dock's labels and lists on every frame of a scrub costs Qt painting on
        the critical path of each step and shows nothing anyone can read at that speed; the
        dock catches up :data:`DOCK_DELAY_S` after the last step.
        """
        self._update_overlay()
        if self._dock_timer is None:
            self._notify()
        else:
            self._dock_timer.start()

    @property
    def ds(self):
        """The dataset under review."""
        return self.session.ds

    # ------------------------------------------------------------------ drawing
    def goto(self, t: int, force: bool = False, scrub: bool = False) -> None:
        """Show frame ``t`` (clamped to the dataset).

        Args:
            t: The frame.
            force: Redraw even when it is the current frame.
            scrub: A step of a scrub (arrow keys): the dock follows once it pauses; a jump
                (N, the review list, undo) updates the dock at once.
        """
        t = int(np.clip(t, 0, max(self.session.n_frames - 1, 0)))
        if int(self.viewer.dims.current_step[0]) != t:
            self.viewer.dims.set_current_step(0, t)  # -> _before_slice -> render
            if not scrub:
                self._notify()
        elif force or t != self.frame:
            self.frame = t
            self.render()

    def _on_step(self, event=None) -> None:
        t = int(self.viewer.dims.current_step[0])
        if t != self.frame:
            self.frame = t
            self.render(step=True)

    def _before_slice(self, event=None) -> None:
        """The slider moved and napari has not sliced the layers yet.

        Only store the new frame's content in our layers; napari's slicing right after draws them
        (once).
        """
        self._sliced_at[0] = tuple(self.viewer.dims.point)  # napari slices right after this
        if self.viewer.dims.ndim != 3:
            return
        t = int(self.viewer.dims.current_step[0])
        if t != self.frame:
            # A frame not decoded yet (a jump): the decode-ahead thread decodes it while this
            # thread updates and slices the point and line layers, then napari's slicing of the
            # image waits for it (and finds the other layers sliced already).
            decoding = self.frames.prepare(t)
            self.frame = t
            self.render(draw=False, step=True)
            update = getattr(self.viewer, "_update_layers", None)
            if decoding and callable(update):
                update(layers=[self.lines_layer, self.points_layer])

    def render(self, keep_selection: bool = False, draw: bool = True, step: bool = False) -> None:
        """Redraw the current frame's points and lines from the dataset.

        Args:
            keep_selection: Keep the selected points selected.
            draw: Refresh the layers; False when napari is about to slice them anyway.
            step: A plain frame step: the dock is updated once scrubbing pauses.
        """
        t = self.frame
        s = self.session
        rows = s.ann_rows(t)
        fp = convert.frame_points(self.ds, rows, t, s.point_flags(t), self.point_size)
        layer = self.points_layer
        selected = set(layer.selected_data) if keep_selection else set()
        # One redraw for the whole update: with the layer's events blocked the setters only
        # store the new values (each would otherwise redraw, and a data event makes the viewer
        # re-slice every layer); refresh() then draws them once. Our points stay inside the
        # frame, so the viewer's extent does not change.
        with self._syncing():
            with _quiet(layer):
                layer.selected_data = set()
                layer.data = fp.data
                self._shown_features = _set_features(layer, fp.columns, self._shown_features)
                if len(fp.data):  # a step to a frame drawn alike skips the style setters
                    for name in ("face_color", "border_color", "border_width", "size"):
                        value = getattr(fp, name)
                        if not _same_array(getattr(layer, name), value):
                            setattr(layer, name, value)
                if selected and max(selected) < len(fp.data):
                    layer.selected_data = selected
            if draw:  # a layer-list icon per frame is not worth a redraw
                layer.refresh(thumbnail=False)
        self._rows = rows
        self._draw_lines(self.ds.keypoints[rows][..., :2], draw=draw)
        if step:
            self._notify_later()
        else:
            self._notify()

    def _draw_lines(self, xy: np.ndarray, draw: bool = True) -> None:
        t = self.frame
        rows = self._rows
        bones = convert.skeleton_segments(xy)
        interp = (self.ds.source[rows][:, convert.STICK_POINTS] == layout.INTERPOLATED).any(1)
        stick = convert.stick_segments(xy, self.session.track[rows], interp)
        self._lines = {"skeleton": bones, "stick": stick}
        data, colors = convert.line_vectors(bones, stick, t, self.line_width)
        layer = self.lines_layer
        with self._syncing():
            with _quiet(layer):  # one redraw (see render)
                layer.data = data
                # Same number of lines: napari keeps their colours; set them only if they
                # changed (a colour setter costs as much as the data's).
                if len(data) and not _same_array(layer.edge_color, colors):
                    layer.edge_color = colors
            if draw:
                layer.refresh(thumbnail=False)

    def line_segments(self, part: str) -> tuple[np.ndarray, ...]:
        """The lines drawn for the current frame (dataset ``x, y``).

        Args:
            part: ``"skeleton"``: ``(a, b)`` bone endpoints; ``"stick"``: ``(a, b, colours)``,
                the weapon wrist -> grip lines, then the grip -> tip lines.
        """
        return self._lines[part]

    def _layer_positions(self) -> np.ndarray:
        layer = self.points_layer
        return convert.positions_from_layer(layer.data, layer.features, self._rows)

    def _update_overlay(self) -> None:
        """Canvas text: flagged state, modes and unsaved edits (the slider shows the frame).

        Only set when it changes, so a plain frame step does not redraw text.
        """
        s, t = self.session, self.frame
        if t < 0:
            return
        flagged = s.is_flagged(t) if s.n_frames else False
        state = []
        if flagged:
            codes = sorted({str(f.get("code")) for f in s.frame_findings(t)})
            state.append("FLAGGED: " + ", ".join(codes[:3]))
        modes = [m for m, on in (("body unlocked", self.unlocked), ("rigid", self.rigid)) if on]
        if modes:
            state.append("[" + ", ".join(modes) + "]")
        if self.session.pending_key:
            keys_at = sorted(f + 1 for f, _ in self.session.pending_key.values())
            state.append("keyframe @" + ",".join(map(str, keys_at)) + " (I: fill to here)")
        if s.unsaved:
            state.append(f"{s.unsaved} unsaved")
        overlay = self.viewer.canvas.overlays.text
        text = "  ".join(state)
        if overlay.text != text:
            overlay.text = text
        color = (1.0, 0.25, 0.25, 1.0) if flagged else (1.0, 1.0, 1.0, 1.0)
        if overlay.color is None or not np.allclose(overlay.color, color):
            overlay.color = color

    # ------------------------------------------------------------------ napari events
    def _keep_drag_last(self, event=None) -> None:
        """Keep our drag follower after napari's mode callback (it moves the points first)."""
        cbs = self.points_layer.mouse_drag_callbacks
        if self._follow_drag in cbs and cbs[-1] != self._follow_drag:
            cbs.remove(self._follow_drag)
            cbs.append(self._follow_drag)

    def _follow_drag(self, layer, event):
        """While points are dragged: keep the stick rigid if asked, and redraw the lines."""
        yield
        while event.type == "mouse_move":
            if layer.selected_data:
                xy = self._layer_positions()
                if self.rigid:
                    xy = self._rigid_preview(xy)
                self._draw_lines(xy)
            yield

    def _rigid_preview(self, xy: np.ndarray) -> np.ndarray:
        layer = self.points_layer
        old = self.ds.keypoints[self._rows][..., :2]
        feats = layer.features
        changed = False
        for a in range(len(self._rows)):
            moved = ~np.isclose(xy[a], old[a]).all(-1) & np.isfinite(xy[a]).all(-1)
            new = rigid_adjust(old[a], xy[a], moved)
            if not np.allclose(new, xy[a], equal_nan=True):
                changed = True
                xy[a] = new
        if changed:  # move the shown points too, without an edit
            a_idx = pd.Index(self._rows).get_indexer(feats["ann_row"].to_numpy())
            pos = convert.xy_to_napari(xy[a_idx, feats["kp"].to_numpy()], self.frame)
            layer.data[:, 1:] = pos[:, 1:]
            with self._syncing():
                layer.refresh()
        return xy

    def _on_points_data(self, event) -> None:
        if self._sync:
            return
        action = str(getattr(event, "action", "changed"))
        if action in ("changing", "adding", "removing"):
            return
        if action == "changed":
            self._commit_layer_positions()
        else:  # points added or deleted by napari's own tools: the dataset decides
            self.render()
            self._notify(
                "Points are not added or deleted here: use G/T to place the grip/tip "
                "and M to mark a point missing."
            )

    def _enforce_lock(self, event=None) -> None:
        """Body points cannot be selected (so not dragged) while they are locked."""
        if self._sync or self.unlocked:
            return
        layer = self.points_layer
        kp = layer.features["kp"].to_numpy()
        sel = layer.selected_data
        keep = {i for i in sel if i < len(kp) and kp[i] >= layout.NUM_BODY}
        if keep != set(sel):
            with self._syncing():
                layer.selected_data = keep
            self.message = "Body points are locked (press L to unlock them)."

    def _commit_layer_positions(self) -> None:
        """Write what moved in the layer into the dataset (journalled, provenance human)."""
        s, t, rows = self.session, self.frame, self._rows
        new = self._layer_positions()
        old = self.ds.keypoints[rows][..., :2]
        shown = np.isfinite(new).all(-1)
        moved = shown & ~np.isclose(new, old, atol=1e-6).all(-1)
        if not moved.any():
            self.render(keep_selection=True)
            return
        locked = moved.copy()
        locked[:, layout.NUM_BODY :] = False
        if not self.unlocked and locked.any():
            moved &= ~locked
            self.message = "Body points are locked (press L to unlock them)."
        parts, names = [], set()
        for a in np.flatnonzero(moved.any(1)):
            target = rigid_adjust(old[a], new[a], moved[a]) if self.rigid else new[a]
            idx = np.flatnonzero(
                moved[a] | (~np.isclose(target, old[a]).all(-1) & np.isfinite(target).all(-1))
            )
            v = self.ds.keypoints[rows[a], idx, 2]
            xyv = np.column_stack([target[idx], np.where(v > 0, v, 2)])
            parts.append((int(rows[a]), idx, xyv))
            names.update(layout.KEYPOINT_NAMES[k] for k in idx)
        edit = s.apply_points(t, "moved " + ", ".join(sorted(names)), parts)
        self.render(keep_selection=True)
        if edit is not None:
            self._notify(edit.label)

    # ------------------------------------------------------------------ actions (keys, dock)
    def next_frame(self) -> None:
        """Step to the next frame (a scrub step)."""
        self.goto(self.frame + 1, scrub=True)

    def previous_frame(self) -> None:
        """Step to the previous frame (a scrub step)."""
        self.goto(self.frame - 1, scrub=True)

    def next_flagged(self) -> None:
        """Jump to the next flagged frame."""
        t = self.session.next_flagged(self.frame, 1)
        if t is None:
            self._notify("No flagged frame after this one.")
        else:
            self.goto(t)

    def previous_flagged(self) -> None:
        """Jump to the previous flagged frame."""
        t = self.session.next_flagged(self.frame, -1)
        if t is None:
            self._notify("No flagged frame before this one.")
        else:
            self.goto(t)

    def _after_edit(self, edit, nothing: str) -> None:
        self.render(keep_selection=True)
        if edit is not None and self.queue_filter == FILTER_PROPOSAL:
            self._emit("filter")  # accepted frames leave the "with a proposed fix" list
        self._notify(edit.label if edit is not None else nothing)

    def accept_correction(self) -> None:
        """Accept this frame's proposed fixes.

        Corrected / interpolated points and validate proposals become human.
        """
        self._after_edit(
            self.session.accept_correction(self.frame),
            "No proposed fix to accept on this frame.",
        )

    def accept_range(self) -> None:
        """Accept the proposed fixes of the run of frames around this one, as one undoable step.

        The run is e.g. an interpolation.
        """
        self._after_edit(
            self.session.accept_range(self.frame),
            "No proposed fix to accept on or next to this frame.",
        )

    def accept_in_filter(self) -> None:
        """Accept the proposed fixes on every frame the review list shows (its filter)."""
        frames = self.filter_frames()
        edit = self.session.accept_frames(frames, self.frame, "accepted the listed frames")
        self._after_edit(edit, f"No proposed fix to accept on the {len(frames)} listed frames.")

    def set_keyframe(self) -> None:
        """Make this frame's stick a keyframe; the second keyframe fills the frames between."""
        row = self._target_row()
        if row is None:
            self._notify("No person in this frame.")
            return
        _edit, message = self.session.set_keyframe(self.frame, row)
        self.render(keep_selection=True)
        self._notify(message)

    def copy_previous_stick(self) -> None:
        """The previous frame's stick, carried by the weapon wrist onto this frame."""
        row = self._target_row()
        if row is None:
            self._notify("No person in this frame.")
            return
        _edit, message = self.session.copy_previous_stick(self.frame, row)
        self.render(keep_selection=True)
        self._notify(message)

    def _target_row(self) -> int | None:
        """The person a stick action is for.

        The selected point's, else the only one, else the one nearest the mouse.
        """
        rows = self._rows
        if not len(rows):
            return None
        layer = self.points_layer
        sel = sorted(layer.selected_data)
        if sel and sel[0] < len(layer.features):
            return int(layer.features["ann_row"].iat[sel[0]])
        if len(rows) == 1:
            return int(rows[0])
        xy = self.ds.keypoints[rows][..., :2]
        d = np.linalg.norm(xy - self._cursor_xy(), axis=-1)
        d = np.where(np.isfinite(d), d, np.inf).min(1)
        return int(rows[int(np.argmin(d))])

    # ------------------------------------------------------------------ review-list filter
    def set_queue_filter(self, name: str) -> None:
        """Show only the review items matching ``name`` (see :meth:`ReviewList.filters`)."""
        self.queue_filter = name
        self._emit("filter")
        n = len(self.filter_frames())
        self._notify(f"review list: {name} ({n} frames)")

    def filter_frames(self) -> list[int]:
        """The frames of the review items the filter shows."""
        review = self.session.review
        items = review.matching(self.queue_filter, self.session)
        return sorted({review.items[i].frame for i in items if review.items[i].frame is not None})

    def revert_stick(self) -> None:
        """Revert grip and tip to the raw import, as a human decision."""
        self._after_edit(self.session.revert_stick(self.frame), "The stick already is as imported.")

    def mark_missing(self) -> None:
        """Mark the selected points (or the one under the cursor) missing."""
        layer = self.points_layer
        feats = layer.features
        idx = sorted(layer.selected_data) or self._point_near_cursor()
        pairs = [(int(feats["ann_row"].iat[i]), int(feats["kp"].iat[i])) for i in idx]
        if not self.unlocked:
            pairs = [p for p in pairs if p[1] >= layout.NUM_BODY]
        if not pairs:
            self._notify(
                "Select a point (or hover over it) to mark it missing; body points need L first."
            )
            return
        self._after_edit(self.session.mark_missing(self.frame, pairs), "")

    def _cursor_xy(self) -> np.ndarray:
        return convert.canvas_to_xy(self.viewer.cursor.position)

    def _point_near_cursor(self) -> list[int]:
        data = self.points_layer.data
        if not len(data):
            return []
        d = np.linalg.norm(convert.napari_to_xy(data) - self._cursor_xy(), axis=1)
        i = int(np.argmin(d))
        return [i] if d[i] <= 1.5 * self.point_size else []

    def place_grip(self) -> None:
        """Put the grip at the mouse pointer."""
        self._place(layout.GRIP)

    def place_tip(self) -> None:
        """Put the tip at the mouse pointer."""
        self._place(layout.TIP)

    def _place(self, k: int) -> None:
        """Put keypoint ``k`` of the nearest person at the mouse cursor."""
        rows = self._rows
        if not len(rows):
            self._notify("No person in this frame.")
            return
        cur = self._cursor_xy()
        xy = self.ds.keypoints[rows][..., :2]
        with np.errstate(invalid="ignore"):
            d = np.nanmin(
                np.where(np.isfinite(xy).all(-1), np.linalg.norm(xy - cur, axis=-1), np.inf), axis=1
            )
        a = int(np.argmin(d))
        new = xy[a].copy()
        new[k] = cur
        moved = np.zeros(layout.NUM_KEYPOINTS, bool)
        moved[k] = True
        target = rigid_adjust(xy[a], new, moved) if self.rigid else new
        idx = np.flatnonzero(
            moved | (~np.isclose(target, xy[a]).all(-1) & np.isfinite(target).all(-1))
        )
        v = self.ds.keypoints[rows[a], idx, 2]
        edit = self.session.set_points(
            self.frame,
            int(rows[a]),
            idx,
            np.column_stack([target[idx], np.where(v > 0, v, 2)]),
            f"placed {layout.KEYPOINT_NAMES[k]}",
        )
        self._after_edit(edit, "")

    def set_stance(self, value: str | None) -> None:
        """Set this frame's stance label (None clears it)."""
        self._after_edit(self.session.set_stance(self.frame, value), "")

    def next_stance(self) -> None:
        """Give this frame the next stance label (taxonomy order)."""
        self._after_edit(
            self.session.cycle_stance(self.frame, 1), "No stance names (no taxonomy and no labels)."
        )

    def previous_stance(self) -> None:
        """Give this frame the previous stance label (taxonomy order)."""
        self._after_edit(
            self.session.cycle_stance(self.frame, -1),
            "No stance names (no taxonomy and no labels).",
        )

    def copy_previous_stance(self) -> None:
        """Give this frame the previous frame's stance (labelling a video run by run)."""
        if self.frame <= 0:
            return
        self._after_edit(
            self.session.set_stance(self.frame, self.session.stance(self.frame - 1)),
            "Same stance as the previous frame already.",
        )

    def toggle_done(self) -> None:
        """Toggle "done" on this frame's review item(s)."""
        items = self.session.review.items_at(self.frame)
        if not items:
            self._notify("This frame is not in the review list.")
            return
        done = not all(self.session.review.items[i].done for i in items)
        for i in items:
            self.set_done(i, done)

    def set_done(self, i: int, done: bool) -> None:
        """Mark review item ``i`` done (or not); saved at once."""
        try:
            self.session.review.set_done(i, done)
        except OSError as exc:
            self._notify(f"Could not save the queue: {exc}", warn=True)
            return
        self._emit("done", i)
        self._notify(f"review item {i + 1} {'done' if done else 'not done'}")

    def toggle_unlock(self) -> None:
        """Unlock or lock the body points."""
        self.unlocked = not self.unlocked
        self._enforce_lock()
        self._notify("Body points unlocked." if self.unlocked else "Body points locked.")

    def toggle_rigid(self) -> None:
        """Turn the rigid stick on or off."""
        self.rigid = not self.rigid
        self._notify(
            "Rigid stick: dragging the tip rotates it about the grip."
            if self.rigid
            else "Free stick."
        )

    def undo(self) -> None:
        """Undo the last edit (coordinates and provenance)."""
        edit = self.session.undo()
        self._after_undo(edit, "undid", "Nothing to undo.")

    def redo(self) -> None:
        """Redo the last undone edit."""
        edit = self.session.redo()
        self._after_undo(edit, "redid", "Nothing to redo.")

    def _after_undo(self, edit, verb: str, nothing: str) -> None:
        if edit is None:
            self._notify(nothing)
            return
        if edit.frame != self.frame:
            self.goto(edit.frame)
        self.render()
        self._notify(f"{verb}: {edit.label}")

    def save(self, force: bool = False) -> bool:
        """Fold the journal into ``dataset.json``; a changed file on disk is not overwritten."""
        ok, msg = self.session.save(force=force)
        self._notify(msg, warn=not ok)
        return ok

    def autosave(self) -> None:
        """Save when there are unsaved edits and no pending save conflict."""
        if self.session.unsaved and self.session.conflict is None:
            self.save()

    def reload(self) -> None:
        """After a save conflict: re-read the file with this session's edits replayed onto it.

        The edits are in the journal.
        """
        self.session.reload()
        self._emit("reloaded")  # the review list may have changed
        self.render()
        self._notify("Reloaded from disk with your journalled edits replayed; save again.")

    def toggle_help(self) -> None:
        """Ask the dock to show or hide the key help."""
        self._emit("help")

    def close(self) -> None:
        """Stop autosave and release the decoders (edits are already journalled)."""
        if self._timer is not None:
            self._timer.stop()
        if self._dock_timer is not None:
            self._dock_timer.stop()
        self.frames.close()


#: A layer's colour managers (napari evented models of their own, outside ``layer.events``).
_COLOR_MANAGERS = ("_face", "_border", "_edge")
#: napari's context manager that holds a layer's refresh (a test renames it to run the fallback).
_REFRESH_BLOCKER = "_block_refresh"


@contextlib.contextmanager
def _quiet(layer) -> Iterator[None]:
    """Let several setters update ``layer`` without each redrawing it (call refresh() after).

    Blocks the layer's events, its colour managers' events and its internal refresh
    (napari's ``Layer._block_refresh``, used the same way inside napari). The colour managers
    must be blocked too: a colour set after new data would otherwise make the drawing read the
    new data through the old slice's indices (an IndexError when the frame has fewer points).
    If a future napari drops ``_block_refresh``, the setters refresh the layer each (correct,
    only slower).
    """
    block = getattr(layer, _REFRESH_BLOCKER, None)
    with contextlib.ExitStack() as stack:
        stack.enter_context(layer.events.blocker_all())
        if block is not None:
            for name in _COLOR_MANAGERS:
                events = getattr(getattr(layer, name, None), "events", None)
                if events is not None:
                    stack.enter_context(events.blocker_all())
            stack.enter_context(block())
        yield


def _same_array(a, b: np.ndarray) -> bool:
    a = np.asarray(a)  # napari keeps colours as float32: equal within that precision
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=1e-6))


def _set_features(layer, columns: dict[str, np.ndarray], shown: tuple | None = None) -> tuple:
    """Set a Points layer's features table (its events blocked by the caller).

    Stepping to a frame with the same points only changes values: those are written into the
    layer's table in place, which skips napari's re-validation of the table and its defaults
    (a third of our per-step work). Only the columns that differ from what this function last
    wrote (``shown``, while the layer still holds that very table) are compared and written, so
    a step reads nothing back from the table. Anything else goes through the setter.

    Args:
        layer: The Points layer.
        columns: The new table's columns (:attr:`convert.FramePoints.columns`).
        shown: What the previous call returned.

    Returns:
        ``(table, columns)``: the layer's table now and the columns written into it, for the
        next call.
    """
    cur = layer.features
    n = len(next(iter(columns.values()), ()))
    if (
        shown is not None
        and shown[0] is cur
        and len(cur) == n
        and list(cur.columns) == list(columns)
        and all(shown[1][c].dtype == v.dtype for c, v in columns.items())
    ):
        changed = [c for c, new in columns.items() if not _same_values(shown[1][c], new)]
        for c in changed:
            cur[c] = columns[c]
        if "label" in changed:  # the text drawn beside grip and tip
            layer.text.refresh(cur)
        return cur, dict(columns)
    features = pd.DataFrame(columns)
    if (
        isinstance(cur, pd.DataFrame)
        and len(cur) == len(features)
        and list(cur.columns) == list(features.columns)
        and (cur.dtypes == features.dtypes).all()
    ):
        changed = []
        for col in features.columns:
            new = features[col].to_numpy()
            old = cur[col].to_numpy()
            if not (new.dtype == old.dtype and _same_values(old, new)):
                cur[col] = new
                changed.append(col)
        if "label" in changed:
            layer.text.refresh(cur)
    else:
        layer.features = features
    return layer.features, dict(columns)


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal columns (NaN equals NaN in float columns)."""
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool((a == b).all())


def _freeze_thumbnail(layer) -> bool:
    """Stop napari from recomputing ``layer``'s layer-list icon on every frame step.

    napari redraws each layer's thumbnail (and repaints the layer list) whenever the layer is
    sliced; for our overlays, redrawn per frame, that was a tenth of a frame step and shows
    nothing useful. The icon drawn when the layer was added stays.

    Returns:
        Whether it could; False (the icon follows every frame, as before) when the layer has
        no napari ``_update_thumbnail``.
    """
    if not callable(getattr(layer, "_update_thumbnail", None)):
        return False
    layer._update_thumbnail = _no_thumbnail
    return True


def _no_thumbnail(*_args, **_kwargs) -> None:
    """The frozen icon's update: nothing."""
    return None


#: Layer events that change nothing a row of napari's layer list shows (name, visibility, icon,
#: loaded / locked state), yet make it repaint the row: three of them per overlay per step.
ROW_SILENT_EVENTS = frozenset({"set_data", "_extent_augmented", "highlight"})


def _quiet_layer_list(viewer) -> bool:
    """Stop napari's layer list from repainting its rows on events that change nothing in them.

    napari's layer-list model turns every event of every layer into a repaint of its row; a frame
    step fires :data:`ROW_SILENT_EVENTS` on each of our three overlays, so the list repainted
    five or six rows per step (a layer's icon still updates: ``thumbnail`` passes).

    Returns:
        Whether the filter is in place; False (rows repaint as before) when napari's Qt viewer,
        its layer list or the model's ``_process_event`` are not where this expects them.
    """
    try:
        model = viewer.window._qt_viewer.layers.model()
        while not hasattr(model, "_process_event") and hasattr(model, "sourceModel"):
            model = model.sourceModel()  # the list shows it through a (reversing) proxy
    except (AttributeError, RuntimeError):
        return False
    process = getattr(model, "_process_event", None)
    if process is None:
        return False
    if getattr(process, "arnis_quiet", False):
        return True

    def process_shown(event) -> None:
        if getattr(event, "type", None) not in ROW_SILENT_EVENTS:
            process(event)

    process_shown.arnis_quiet = True
    # napari holds the bound method as (model, name) and looks the name up per event.
    model._process_event = process_shown
    return True


def _connect_first(emitter, callback: Callable) -> bool:
    """Connect ``callback`` to a napari event emitter, ahead of napari's own callbacks.

    napari always runs its own callbacks before any other; when its emitter internals are not
    as expected the callback stays connected after them (still correct, only slower).

    Returns:
        Whether it runs first.
    """
    emitter.connect(callback)
    lists = [getattr(emitter, n, None) for n in _EMITTER_LISTS]
    if any(not isinstance(lst, list) for lst in lists) or len({len(x) for x in lists}) != 1:
        return False
    i = next((j for j, cb in enumerate(lists[0]) if _same_callback(cb, callback)), -1)
    if i < 0:
        return False
    for lst in lists:
        lst.insert(0, lst.pop(i))
    return True


_EMITTER_LISTS = ("_callbacks", "_callback_refs", "_callback_pass_event")


def _same_callback(stored, callback) -> bool:
    """Whether an emitter's stored callback is ``callback``.

    Bound methods are kept as ``(weakref to the object, method name)``.
    """
    if isinstance(stored, tuple) and len(stored) == 2 and callable(stored[0]):
        return stored[0]() is getattr(callback, "__self__", None) and stored[1] == getattr(
            callback, "__name__", None
        )
    return stored == callback


def _visual(viewer, layer):
    """The vispy visual napari draws ``layer`` with, or None if napari no longer exposes it."""
    try:
        return viewer.window._qt_viewer.canvas.layer_to_visual[layer]
    except (AttributeError, KeyError, TypeError):
        return None


def _reuse_color_shader(viewer, layer) -> bool:
    """Stop a Vectors layer from recompiling its shader program on every data update.

    vispy's Mesh visual (napari draws vectors with it) builds a new ``color_transform`` shader
    function on every data update, which relinks the whole GL program: with two line layers
    updated per frame that was about a fifth of a frame step under software OpenGL. For RGBA
    colours the function is a stateless pass-through, so one instance per visual is reused
    (vispy skips assigning the same object). Colormapped data still gets a fresh one.

    Returns:
        Whether it could; False (a fresh shader function per update, as before) if napari or
        vispy no longer expose these internals.
    """
    node = getattr(_visual(viewer, layer), "node", None)
    if node is None:
        return False
    build = getattr(node, "_build_color_transform", None)
    if build is None:
        return False
    if getattr(build, "arnis_reuse", False):
        return True
    cached: list = []

    def build_once(colors):
        if colors.ndim == 2 and colors.shape[1] == 1:  # values through a colormap
            return build(colors)
        if not cached:
            cached.append(build(colors))
        return cached[0]

    build_once.arnis_reuse = True
    object.__setattr__(node, "_build_color_transform", build_once)  # vispy nodes are frozen
    return True


def _light_points_reset(viewer, layer) -> bool:
    """Let new data on a Points layer redo only what new data changes in its drawing.

    napari's Points visual re-applies everything on every data update (visibility, opacity,
    blending, transforms, clipping planes, antialiasing, shading, size limits), each of which
    has an event of its own when it changes: two thirds of its update on a frame step. After
    the first one, and while the displayed axes stay the same, only the text and the highlight
    are redone on new data.

    Returns:
        Whether it could; False (the full update, as before) if napari no longer has these
        internals.
    """
    visual = _visual(viewer, layer)
    if visual is None:
        return False
    full = getattr(visual, "reset", None)
    text = getattr(visual, "_update_text", None)
    highlight = getattr(visual, "_on_highlight_change", None)
    if full is None or text is None or highlight is None:
        return False
    if getattr(full, "arnis_light", False):
        return True
    shown: list = []

    def reset() -> None:
        si = getattr(layer, "_slice_input", None)
        key = None if si is None else (tuple(si.displayed), si.ndisplay)
        if key is None or not shown or shown[0] != key:
            shown[:] = [key]
            full()
            return
        text(update_node=False)
        highlight()  # updates the node

    reset.arnis_light = True
    visual.reset = reset
    return True


#: Per vispy text-node class, its subclass that ignores setters repeating the current value.
_STEADY_TEXT: dict[type, type] = {}


def _steady_text(viewer, layer) -> bool:
    """Stop a Points layer's labels from being laid out anew on every frame step.

    napari sets the label node's strings, anchors and colour on every data update, and vispy
    lays the strings out again (new vertex, index and colour buffers) even when they are the
    same ("grip", "tip"): half of the points layer's drawing on a frame step. The node gets a
    subclass whose setters skip a value equal to the current one; positions are still set on
    every update.

    Returns:
        Whether it could; False (laid out on every update, as before) if napari or vispy no
        longer have these internals.
    """
    node = getattr(getattr(_visual(viewer, layer), "node", None), "text", None)
    if node is None:
        return False
    cls = type(node)
    if getattr(cls, "arnis_steady", False):
        return True
    steady = _STEADY_TEXT.get(cls)
    if steady is None:
        props = {name: getattr(cls, name, None) for name in ("text", "anchors", "color")}
        if not all(isinstance(p, property) and p.fset for p in props.values()) or not all(
            hasattr(node, a) for a in ("_text", "_anchors", "_color")
        ):
            return False
        steady = type(
            "Steady" + cls.__name__,
            (cls,),
            {
                "arnis_steady": True,
                "text": _steady_property(props["text"], "_text", _same_strings),
                "anchors": _steady_property(props["anchors"], "_anchors", _same_anchors),
                "color": _steady_property(props["color"], "_color", _same_color),
            },
        )
        _STEADY_TEXT[cls] = steady
    try:
        node.__class__ = steady
    except TypeError:
        return False
    return True


def _steady_property(prop: property, attr: str, same: Callable) -> property:
    """``prop`` whose setter does nothing when ``same(current, new)``."""

    def fset(self, value) -> None:
        if not same(getattr(self, attr), value):
            prop.fset(self, value)

    return property(prop.fget, fset, prop.fdel, prop.__doc__)


def _same_strings(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return isinstance(a, str) and isinstance(b, str) and a == b
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    return a.shape == b.shape and bool((a == b).all())


def _same_anchors(a, b) -> bool:
    return tuple(a) == tuple(b)


def _same_color(a, b) -> bool:
    from vispy.color import ColorArray

    try:
        new = ColorArray(b).rgba
    except (TypeError, ValueError):
        return False
    return _same_array(getattr(a, "rgba", None), new)


def _slice_once(viewer) -> list | None:
    """Have napari slice the layers once per frame step instead of twice.

    napari connects its layer slicing to both the dims' ``point`` and ``current_step`` events,
    which a frame step fires one after the other (a workaround, in napari's words, for a point
    changed by a validator without a ``point`` event; "we fire double events"). The second
    slicing finds nothing changed in any layer but still costs its bookkeeping (the layers'
    extent, the cursor, each layer's slice request). Here the ``current_step`` one runs only
    when the point differs from the one the ``point`` event announced last, which
    :meth:`ArnisApp._before_slice` records (napari slices right after it) as the first item of
    the returned list (one list per viewer, whichever app records into it).

    Returns:
        The list to record the point into; None (napari's double slicing, as before) when the
        viewer or its dims events are not as expected.
    """
    update = getattr(viewer, "_update_layers", None)
    emitter = getattr(getattr(viewer.dims, "events", None), "current_step", None)
    callbacks = getattr(emitter, "_callbacks", None)
    if not callable(update) or not isinstance(callbacks, list):
        return None
    for cb in callbacks:
        if isinstance(getattr(cb, "arnis_sliced_at", None), list):
            return cb.arnis_sliced_at
    if not any(_same_callback(cb, update) for cb in callbacks):
        return None
    ref = weakref.ref(viewer)
    sliced_at: list = [None]

    def update_unless_sliced(event=None) -> None:
        v = ref()
        if v is not None and sliced_at[0] != tuple(v.dims.point):
            v._update_layers()

    update_unless_sliced.arnis_sliced_at = sliced_at
    emitter.disconnect(update)
    emitter.connect(update_unless_sliced)  # holds the viewer weakly, like napari's own
    return sliced_at


def _steady_transform(viewer, layer) -> bool:
    """Stop a layer's visual from recomputing its transform on every new frame.

    napari's image and vectors visuals recompute the layer's data-to-canvas matrix (a chain of
    napari transforms, sliced to the displayed axes) after every data update, in case the
    displayed axes changed. On a frame step they have not: there the computation is skipped when the
    displayed axes, the visual's node and its units are the ones the last computation saw.
    Calls outside a data update (napari's events for a changed scale, translation, rotation,
    shear or affine) always compute.

    Returns:
        Whether it could; False (a computation per frame, as before) if napari no longer has
        these internals.
    """
    visual = _visual(viewer, layer)
    if visual is None:
        return False
    data_change = getattr(visual, "_on_data_change", None)
    matrix_change = getattr(visual, "_on_matrix_change", None)
    if data_change is None or matrix_change is None:
        return False
    if getattr(data_change, "arnis_steady", False):
        return True
    state = {"in_data": False, "key": None}

    def key() -> tuple | None:
        si = getattr(layer, "_slice_input", None)
        node = getattr(visual, "node", None)
        if si is None or node is None:
            return None
        return (
            tuple(si.displayed),
            si.ndisplay,
            id(node),
            type(getattr(node, "transform", None)),
            tuple(getattr(visual, "_world_to_layer_units_scale", ())),
        )

    def on_matrix_change(*args, **kwargs):
        k = key()
        if state["in_data"] and k is not None and k == state["key"]:
            return None
        result = matrix_change(*args, **kwargs)
        state["key"] = k
        return result

    def on_data_change(*args, **kwargs):
        state["in_data"] = True
        try:
            return data_change(*args, **kwargs)
        finally:
            state["in_data"] = False

    on_data_change.arnis_steady = True
    visual._on_matrix_change = on_matrix_change
    visual._on_data_change = on_data_change
    return True
