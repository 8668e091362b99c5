"""The stance taxonomy: stance classes and their hierarchy (family = footwork, chamber = weapon).

One home for reading and validating ``taxonomy.json`` (``schemas/taxonomy.schema.json``)::

    tax = Taxonomy.load("samples/arnis/taxonomy.json")
    tax.classes[:2], tax.families, tax.chambers, tax.family_of, tax.chamber_of
    Taxonomy.from_dict(ds.taxonomy)        # a dataset's embedded taxonomy
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.errors import InputError, expected
from toolkit.schema import validate


@dataclass
class Taxonomy:
    """Stance classes and their hierarchy (family = footwork, chamber = weapon position).

    Attributes:
        classes: Stance names in class-index order.
        families: Family names (empty for a flat taxonomy).
        chambers: Chamber names (empty for a flat taxonomy).
        family_of: ``(C,)`` family index of each stance (-1 when flat).
        chamber_of: ``(C,)`` chamber index of each stance (-1 when flat).
    """

    classes: list[str]
    families: list[str] = field(default_factory=list)
    chambers: list[str] = field(default_factory=list)
    family_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chamber_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def hierarchical(self) -> bool:
        """Whether the stances form families x chambers."""
        return bool(self.families) and bool(self.chambers)

    def __repr__(self) -> str:
        return (
            f"Taxonomy(classes={len(self.classes)}, families={len(self.families)}, "
            f"chambers={len(self.chambers)})"
        )

    @classmethod
    def from_dict(cls, doc: dict, file: str | Path | None = None) -> Taxonomy:
        """Validate a taxonomy document (``schemas/taxonomy.schema.json``) and index it.

        Raises:
            InputError: Schema violations, duplicate stance names, or family/chamber given for
                some stances but not others.
        """
        validate(doc, "taxonomy", file)
        names = [s["name"] for s in doc["stances"]]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(
                expected("taxonomy stances[].name", "unique", dup[0])
                + " (it appears more than once)",
                file,
            )
        has_f = [("family" in s) and ("chamber" in s) for s in doc["stances"]]
        if any(has_f) and not all(has_f):
            bad = names[has_f.index(False)]
            raise InputError(
                f"Expected every stance to have both 'family' and 'chamber' (or none, for a flat "
                f"taxonomy), but stance {bad!r} lacks one.",
                file,
            )
        if not all(has_f):
            return cls(classes=names)
        families = list(doc.get("families") or dict.fromkeys(s["family"] for s in doc["stances"]))
        chambers = list(doc.get("chambers") or dict.fromkeys(s["chamber"] for s in doc["stances"]))
        for key, known in (("family", families), ("chamber", chambers)):
            for s in doc["stances"]:
                if s[key] not in known:
                    raise InputError(
                        expected(f"stance {s['name']!r} {key}", f"one of {known}", s[key]), file
                    )
        return cls(
            classes=names,
            families=families,
            chambers=chambers,
            family_of=np.array([families.index(s["family"]) for s in doc["stances"]], np.int64),
            chamber_of=np.array([chambers.index(s["chamber"]) for s in doc["stances"]], np.int64),
        )

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """Read and validate a taxonomy JSON file."""
        return cls.from_dict(read_document(path), path)

    def to_dict(self) -> dict:
        """The taxonomy document (round-trips through :meth:`from_dict`)."""
        if not self.hierarchical:
            return {"stances": [{"name": n} for n in self.classes]}
        return {
            "families": self.families,
            "chambers": self.chambers,
            "stances": [
                {"name": n, "family": self.families[f], "chamber": self.chambers[c]}
                for n, f, c in zip(self.classes, self.family_of, self.chamber_of, strict=True)
            ],
        }


def read_document(path: str | Path, option: str = "--taxonomy") -> dict:
    """Read a taxonomy JSON file and check it against ``schemas/taxonomy.schema.json``.

    The one reader of taxonomy files (import, ``toolkit label``, the trainer).

    Raises:
        FileNotFoundError: No such file (the message names ``option``).
        InputError: Not JSON (with the line), or a schema violation.
    """
    import orjson

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected '{option}' to be a JSON file, but {path} does not exist."
        )
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(
            f"Expected valid JSON, but parsing failed: {exc.msg}", path, exc.lineno
        ) from None
    validate(doc, "taxonomy", path)
    return doc
