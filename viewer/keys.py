"""The viewer's key map: one table drives the bindings and the help panel.

Keys are bound on the viewer and on each of our layers (a layer's own bindings win over the
viewer's in napari, so binding on the layers too keeps ours in charge whichever layer is active).
On the keypoints layer this replaces napari's Delete/Backspace (which would delete the point from
the layer) with "mark missing", and napari's Left/Right with our frame steps (same effect).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """One binding.

    Attributes:
        keys: napari key names (``"Shift-N"``, ``"Control-Z"``).
        action: Name of the :class:`viewer.app.ArnisApp` method it calls.
        help: What it does, for the help panel.
    """

    keys: tuple[str, ...]
    action: str
    help: str


KEYMAP: tuple[Key, ...] = (
    Key(("Right",), "next_frame", "next frame"),
    Key(("Left",), "previous_frame", "previous frame"),
    Key(("N",), "next_flagged", "next flagged frame"),
    Key(("Shift-N",), "previous_flagged", "previous flagged frame"),
    Key(
        ("Enter",),
        "accept_correction",
        "accept this frame's proposed fix (corrected / interpolated points and validate "
        "proposals -> human)",
    ),
    Key(
        ("I",),
        "set_keyframe",
        "keyframe: this stick is right; on a second frame of the same person it fills the "
        "frames between (interpolated, violet)",
    ),
    Key(("A",), "accept_range", "accept the whole range of proposed fixes around this frame"),
    Key(("Shift-A",), "accept_in_filter", "accept the proposed fixes of every listed frame"),
    Key(("C",), "copy_previous_stick", "copy the stick from the previous frame (follows the hand)"),
    Key(("R",), "revert_stick", "revert grip and tip to the raw import"),
    Key(
        ("M", "Delete", "Backspace"),
        "mark_missing",
        "mark the selected point (or the one under the mouse) missing",
    ),
    Key(("G",), "place_grip", "put the grip at the mouse pointer"),
    Key(("T",), "place_tip", "put the tip at the mouse pointer"),
    Key(("]",), "next_stance", "next stance label for this frame"),
    Key(("[",), "previous_stance", "previous stance label for this frame"),
    Key(("=",), "copy_previous_stance", "same stance as the previous frame"),
    Key(("D",), "toggle_done", "mark this frame's review item done / not done"),
    Key(("L",), "toggle_unlock", "unlock / lock the body points"),
    Key(("K",), "toggle_rigid", "rigid stick on / off (tip drag keeps the length)"),
    Key(("Control-Z",), "undo", "undo"),
    Key(("Control-Shift-Z", "Control-Y"), "redo", "redo"),
    Key(("Control-S",), "save", "save (fold the journal into dataset.json)"),
    Key(("H",), "toggle_help", "show / hide this help"),
)


def bind(app, providers) -> None:
    """Bind :data:`KEYMAP` to ``app``'s methods on every keymap provider (viewer, layers)."""
    for entry in KEYMAP:
        method = getattr(app, entry.action)
        for key in entry.keys:
            for provider in providers:
                provider.bind_key(key, _handler(method), overwrite=True)


def _handler(method):
    def handler(_provider) -> None:
        method()

    handler.__doc__ = method.__doc__
    return handler


def help_html() -> str:
    """The help panel: a two-column table of keys and what they do."""
    rows = "".join(
        f"<tr><td><b>{' / '.join(k.keys)}</b></td><td>{k.help}</td></tr>" for k in KEYMAP
    )
    extra = (
        "<p>Drag grip and tip with the mouse (select mode). Point size shows confidence; "
        "border: red flagged, orange corrected, violet interpolated, green human. A drifting "
        "stick: I on a good frame before it, I on a good frame after it, check, A.</p>"
    )
    return f"<table cellspacing='2'>{rows}</table>{extra}"
