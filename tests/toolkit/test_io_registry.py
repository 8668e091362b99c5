"""The format registry's shared behaviour: taxonomy pickup for every format."""

from __future__ import annotations

import json
import shutil

import pytest

from toolkit import io
from toolkit.errors import InputError


def test_taxonomy_beside_the_source_is_attached(samples_root):
    result = io.read(samples_root / "data.yaml", labels=samples_root / "labels.csv")
    ds = result.dataset
    assert ds.taxonomy is not None and len(ds.taxonomy["stances"]) == 12
    assert ds.stances[0] == ds.taxonomy["stances"][0]["name"]
    assert any(n.startswith("taxonomy: 12 stances") for n in result.notes)


def test_explicit_taxonomy_with_an_unknown_label_is_refused(samples_root, tmp_path):
    tax = json.loads((samples_root / "taxonomy.json").read_text())
    tax["stances"] = [s for s in tax["stances"] if s["name"] != "forward_high"]
    bad = tmp_path / "tax.json"
    bad.write_text(json.dumps(tax))
    with pytest.raises(InputError, match="forward_high") as err:
        io.read(samples_root / "data.yaml", labels=samples_root / "labels.csv", taxonomy=bad)
    assert str(bad) in str(err.value)


def test_invalid_taxonomy_names_the_field(tmp_path, samples_root):
    src = tmp_path / "src"
    shutil.copytree(samples_root / "images" / "cat_low", src / "images" / "cat_low")
    shutil.copytree(samples_root / "labels" / "cat_low", src / "labels" / "cat_low")
    (src / "taxonomy.json").write_text(json.dumps({"stances": [{"family": "cat"}]}))
    with pytest.raises(InputError, match=r"stances\[0\]"):
        io.read(src)
