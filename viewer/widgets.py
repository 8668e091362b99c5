"""The dock widget: the current frame's findings, stance, prediction, the review list, actions.

Every control has an ``objectName`` so tests (and scripts) can ``findChild`` it. The dock does not
import the app: :mod:`viewer.launch` attaches it to an :class:`viewer.app.ArnisApp`, whose public
actions its buttons call, and whose change announcements (``app.listeners``) it follows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from viewer import keys
from viewer.findings import describe

NO_STANCE = "(no stance)"


class ArnisDock(QWidget):
    """Review panel for the dataset opened in ``napari_viewer``.

    Opened from the plugin menu before a dataset, it shows an "Open dataset…" button.

    Args:
        napari_viewer: The napari viewer.
        opener: ``path -> None``: opens a dataset directory in the viewer (and attaches it to
            this dock); None hides the "Open dataset…" button.
        parent: The Qt parent.

    Attributes:
        viewer: The napari viewer.
        app: The :class:`viewer.app.ArnisApp` it shows (None until a dataset is open).
    """

    def __init__(
        self,
        napari_viewer,
        opener: Callable[[str], object] | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.app = None
        self._opener = opener
        self._updating = False
        self._queue_rows: dict[int, list[int]] = {}
        self._shown_findings: list[str] | None = None
        self._shown_stances: list[str] | None = None
        self.setObjectName("arnis_dock")
        self.setMaximumWidth(420)  # the canvas keeps the room (the help table would widen it)
        # The panel scrolls rather than set the window's height: laid out whole, with the key
        # help open, it was over 1,000 pixels tall, taller than many screens, and the window grew
        # to fit it (a larger window also costs more to repaint on every frame step).
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll = QScrollArea()
        self.scroll.setObjectName("dock_scroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget()
        lay = QVBoxLayout(content)
        self.scroll.setWidget(content)
        outer.addWidget(self.scroll)

        self.open_button = QPushButton("Open dataset…")
        self.open_button.setObjectName("open_button")
        self.open_button.clicked.connect(self._open_dialog)
        lay.addWidget(self.open_button)

        self.frame_label = QLabel("")
        self.frame_label.setObjectName("frame_label")
        self.frame_label.setWordWrap(True)
        lay.addWidget(self.frame_label)

        nav = QHBoxLayout()
        self.prev_flagged_button = self._button("◀ flagged", "prev_flagged_button", nav)
        self.next_flagged_button = self._button("flagged ▶", "next_flagged_button", nav)
        lay.addLayout(nav)

        box = QGroupBox("Findings on this frame")
        box.setObjectName("findings_box")
        bl = QVBoxLayout(box)
        self.findings_list = QListWidget()
        self.findings_list.setObjectName("findings_list")
        self.findings_list.setMaximumHeight(110)
        bl.addWidget(self.findings_list)
        lay.addWidget(box)

        row = QHBoxLayout()
        row.addWidget(QLabel("Stance"))
        self.stance_combo = QComboBox()
        self.stance_combo.setObjectName("stance_combo")
        self.stance_combo.currentTextChanged.connect(self._stance_changed)
        row.addWidget(self.stance_combo, 1)
        lay.addLayout(row)
        self.prediction_label = QLabel("")
        self.prediction_label.setObjectName("prediction_label")
        self.prediction_label.setWordWrap(True)
        lay.addWidget(self.prediction_label)

        toggles = QHBoxLayout()
        self.unlock_check = QCheckBox("Unlock body (L)")
        self.unlock_check.setObjectName("unlock_check")
        self.unlock_check.toggled.connect(lambda on: self._toggle("unlocked", on))
        self.rigid_check = QCheckBox("Rigid stick (K)")
        self.rigid_check.setObjectName("rigid_check")
        self.rigid_check.toggled.connect(lambda on: self._toggle("rigid", on))
        toggles.addWidget(self.unlock_check)
        toggles.addWidget(self.rigid_check)
        lay.addLayout(toggles)

        acts = QHBoxLayout()
        self.accept_button = self._button("Accept (Enter)", "accept_button", acts)
        self.revert_button = self._button("Revert stick (R)", "revert_button", acts)
        self.missing_button = self._button("Missing (M)", "missing_button", acts)
        lay.addLayout(acts)
        stick = QHBoxLayout()
        self.keyframe_button = self._button("Keyframe (I)", "keyframe_button", stick)
        self.copy_stick_button = self._button("Copy prev. (C)", "copy_stick_button", stick)
        self.accept_range_button = self._button("Accept range (A)", "accept_range_button", stick)
        lay.addLayout(stick)
        edits = QHBoxLayout()
        self.undo_button = self._button("Undo", "undo_button", edits)
        self.redo_button = self._button("Redo", "redo_button", edits)
        self.save_button = self._button("Save", "save_button", edits)
        lay.addLayout(edits)
        conflict = QHBoxLayout()
        self.reload_button = self._button("Reload && merge", "reload_button", conflict)
        self.overwrite_button = self._button("Overwrite anyway", "overwrite_button", conflict)
        lay.addLayout(conflict)

        qbox = QGroupBox("Review list")
        qbox.setObjectName("queue_box")
        ql = QVBoxLayout(qbox)
        frow = QHBoxLayout()
        frow.addWidget(QLabel("Show"))
        self.queue_filter = QComboBox()
        self.queue_filter.setObjectName("queue_filter")
        self.queue_filter.currentTextChanged.connect(self._filter_changed)
        frow.addWidget(self.queue_filter, 1)
        ql.addLayout(frow)
        self.queue_list = QListWidget()
        self.queue_list.setObjectName("queue_list")
        self.queue_list.itemClicked.connect(self._queue_clicked)
        self.queue_list.itemChanged.connect(self._queue_checked)
        ql.addWidget(self.queue_list)
        qacts = QHBoxLayout()
        self.done_button = self._button("Mark done (D)", "done_button", qacts)
        self.accept_filter_button = self._button(
            "Accept all listed (Shift-A)", "accept_filter_button", qacts
        )
        ql.addLayout(qacts)
        lay.addWidget(qbox, 1)

        self.status_label = QLabel("")
        self.status_label.setObjectName("status_label")
        self.status_label.setWordWrap(True)
        lay.addWidget(self.status_label)

        self.help_box = QGroupBox("Keys")
        self.help_box.setObjectName("help_box")
        hl = QVBoxLayout(self.help_box)
        self.help_text = QLabel(keys.help_html())
        self.help_text.setObjectName("help_text")
        self.help_text.setWordWrap(True)
        self.help_text.setTextFormat(Qt.TextFormat.RichText)
        hl.addWidget(self.help_text)
        lay.addWidget(self.help_box)

        self._set_enabled(False)

    def _button(self, text: str, name: str, layout) -> QPushButton:
        b = QPushButton(text)
        b.setObjectName(name)
        b.clicked.connect(lambda: self._act(name))
        layout.addWidget(b)
        return b

    # ------------------------------------------------------------------ wiring
    def attach(self, app) -> None:
        """Show ``app``'s dataset and follow its announcements (called when it is opened)."""
        if self.app is not None and self.app is not app:
            _remove(self.app.listeners, self.on_app_event)
        self.app = app
        if self.on_app_event not in app.listeners:
            app.listeners.append(self.on_app_event)
            self.destroyed.connect(lambda *_: _remove(app.listeners, self.on_app_event))
        self._set_enabled(True)
        self._fill_queue()
        self.refresh()

    def on_app_event(self, kind: str, index: int | None = None) -> None:
        """Follow one announcement of the app (see :data:`viewer.app.EVENTS`).

        Args:
            kind: ``"changed"`` (refresh), ``"filter"`` (the review-list filter or what it
                matches changed), ``"done"`` (item ``index`` done or not), ``"reloaded"`` (the
                review list may have changed) or ``"help"`` (show / hide the key help).
            index: The review item, for ``"done"``.
        """
        if kind == "changed":
            self.refresh()
        elif kind == "filter":
            self.apply_filter()
        elif kind == "done" and index is not None:
            self.sync_done(index)
        elif kind == "reloaded":
            self._fill_queue()
            self.refresh()
        elif kind == "help":
            self.toggle_help()

    def _set_enabled(self, on: bool) -> None:
        self.open_button.setVisible(not on and self._opener is not None)
        for w in self.findChildren((QPushButton, QComboBox, QCheckBox, QListWidget)):
            if w is not self.open_button:
                w.setEnabled(on)

    def _open_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open an Arnis dataset")
        if path and self._opener is not None:
            self._opener(path)

    def _act(self, name: str) -> None:
        app = self.app
        if app is None:
            return
        actions = {
            "prev_flagged_button": app.previous_flagged,
            "next_flagged_button": app.next_flagged,
            "accept_button": app.accept_correction,
            "revert_button": app.revert_stick,
            "missing_button": app.mark_missing,
            "undo_button": app.undo,
            "redo_button": app.redo,
            "save_button": app.save,
            "reload_button": app.reload,
            "overwrite_button": lambda: app.save(force=True),
            "done_button": app.toggle_done,
            "keyframe_button": app.set_keyframe,
            "copy_stick_button": app.copy_previous_stick,
            "accept_range_button": app.accept_range,
            "accept_filter_button": app.accept_in_filter,
        }
        actions[name]()

    def _toggle(self, attr: str, on: bool) -> None:
        if self._updating or self.app is None or getattr(self.app, attr) == on:
            return
        (self.app.toggle_unlock if attr == "unlocked" else self.app.toggle_rigid)()

    def _stance_changed(self, text: str) -> None:
        if self._updating or self.app is None:
            return
        self.app.set_stance(None if text == NO_STANCE else text)

    def _filter_changed(self, text: str) -> None:
        if self._updating or self.app is None or not text:
            return
        self.app.set_queue_filter(text)

    def apply_filter(self) -> None:
        """Hide the review items the app's filter does not show."""
        app = self.app
        if app is None:
            return
        shown = set(app.session.review.matching(app.queue_filter, app.session))
        for i in range(self.queue_list.count()):
            self.queue_list.item(i).setHidden(i not in shown)
        if self.queue_filter.currentText() != app.queue_filter:
            self._updating = True
            try:
                self.queue_filter.setCurrentText(app.queue_filter)
            finally:
                self._updating = False

    def _queue_clicked(self, item: QListWidgetItem) -> None:
        if self.app is None:
            return
        i = item.data(Qt.ItemDataRole.UserRole)
        frame = self.app.session.review.items[i].frame
        if frame is not None:
            self.app.goto(frame)

    def _queue_checked(self, item: QListWidgetItem) -> None:
        if self._updating or self.app is None:
            return
        i = item.data(Qt.ItemDataRole.UserRole)
        done = item.checkState() == Qt.CheckState.Checked
        if self.app.session.review.items[i].done != done:
            self.app.set_done(i, done)

    def toggle_help(self) -> None:
        """Show or hide the key help."""
        self.help_box.setVisible(self.help_box.isHidden())  # its own state, shown or not

    # ------------------------------------------------------------------ display
    def _fill_queue(self) -> None:
        review = self.app.session.review
        s = self.app.session
        self._updating = True
        self._queue_rows: dict[int, list[int]] = {}
        try:
            self.queue_list.clear()
            for i, it in enumerate(review.items):
                name = s.frame_name(it.frame) if it.frame is not None else "?"
                if it.frame is None and it.record is not None:
                    name = str(it.record.get("file_name") or it.record.get("video"))
                q = QListWidgetItem(it.label(name))
                q.setData(Qt.ItemDataRole.UserRole, i)
                flags = Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsSelectable
                if it.frame is not None:
                    flags |= Qt.ItemFlag.ItemIsEnabled
                q.setFlags(flags)
                q.setCheckState(Qt.CheckState.Checked if it.done else Qt.CheckState.Unchecked)
                self.queue_list.addItem(q)
                if it.frame is not None:
                    self._queue_rows.setdefault(it.frame, []).append(i)
            names = review.filters()
            if self.app.queue_filter not in names:
                self.app.queue_filter = names[0]
            self.queue_filter.clear()
            self.queue_filter.addItems(names)
            self.queue_filter.setCurrentText(self.app.queue_filter)
        finally:
            self._updating = False
        self.apply_filter()

    def sync_done(self, i: int) -> None:
        """Show item ``i``'s done state (after it changed)."""
        it = self.app.session.review.items[i]
        self._updating = True
        try:
            self.queue_list.item(i).setCheckState(
                Qt.CheckState.Checked if it.done else Qt.CheckState.Unchecked
            )
        finally:
            self._updating = False

    def refresh(self) -> None:
        """Update everything from the app (after a frame change or an edit)."""
        app = self.app
        if app is None or app.frame < 0:
            return
        s, t = app.session, app.frame
        self._updating = True
        try:
            flagged = s.is_flagged(t)
            self.frame_label.setText(
                f"<b>Frame {t + 1} / {s.n_frames}</b>: {s.frame_name(t)}"
                + (" <span style='color:#ff5050'>FLAGGED</span>" if flagged else "")
            )
            lines = [describe(f) for f in s.frame_findings(t)]
            if lines != self._shown_findings:  # Qt widgets redraw on every set: skip same
                self.findings_list.clear()
                self.findings_list.addItems(lines)
                self._shown_findings = lines
            names = [NO_STANCE, *s.stances]
            cur = s.stance(t)
            if cur is not None and cur not in names:
                names.append(cur)
            if self._shown_stances != names:
                self.stance_combo.clear()
                self.stance_combo.addItems(names)
                self._shown_stances = names
            if self.stance_combo.currentText() != (cur or NO_STANCE):
                self.stance_combo.setCurrentText(cur if cur is not None else NO_STANCE)
            preds = s.predictions(t)
            text = "Model: " + "; ".join(preds) if preds else ""
            if (
                preds
                and cur is not None
                and not any(p.startswith(cur + " ") or p == cur for p in preds)
            ):
                text += " <span style='color:#ff9040'>(disagrees with the label)</span>"
            if self.prediction_label.text() != text:
                self.prediction_label.setText(text)
            self.unlock_check.setChecked(app.unlocked)
            self.rigid_check.setChecked(app.rigid)
            rows = self._queue_rows.get(t)
            if rows:
                self.queue_list.setCurrentRow(rows[0])
            elif self.queue_list.currentRow() >= 0:
                self.queue_list.setCurrentRow(-1)
            self.undo_button.setEnabled(s.can_undo)
            self.redo_button.setEnabled(s.can_redo)
            conflict = s.conflict is not None
            self.reload_button.setVisible(conflict)
            self.overwrite_button.setVisible(conflict)
            color = "#ff5050" if conflict else "#c0c0c0"
            status = f"<span style='color:{color}'>{app.message}</span>" + (
                f" ({s.unsaved} unsaved)" if s.unsaved else ""
            )
            if self.status_label.text() != status:
                self.status_label.setText(status)
        finally:
            self._updating = False


def _remove(listeners: list, fn) -> None:
    """Drop ``fn`` from ``listeners`` if it is there."""
    with contextlib.suppress(ValueError):
        listeners.remove(fn)
