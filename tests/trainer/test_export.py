"""ONNX export: one graph, dynamic batch, metadata inside, parity with PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trainer.data import featurise, prepare
from trainer.export import ExportModule, export_run, ort_session, read_metadata
from trainer.runs import load_checkpoint, load_members, run_experiment
from trainer.train import TrainConfig


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory, toy_dataset):
    root = tmp_path_factory.mktemp("exp")
    ds = toy_dataset(root, n_subjects=3, per_class=2, image_size=64)
    prep = prepare(ds)
    run_experiment(
        prep, TrainConfig(model="graph", epochs=1, batch_size=8, members=2), root / "run", n_folds=3
    )
    return root / "run", prep


def test_export_single_and_ensemble_parity(graph_run, tmp_path):
    run, prep = graph_run
    rep = export_run(run, tmp_path / "m.onnx")
    assert set(rep.parity) == {1, 64} and max(rep.parity.values()) <= 1e-4
    assert rep.inputs == ["nodes", "edge_attr"] and rep.outputs[0] == "stance_prob"
    meta = read_metadata(rep.path)
    assert json.loads(meta["class_names"]) == prep.taxonomy.classes
    assert json.loads(meta["keypoint_names"])[17:] == ["stick_grip", "stick_tip"]
    assert json.loads(meta["taxonomy"])["families"] == ["open", "closed"]
    assert json.loads(meta["normalisation"])["crop"]["size"] == int(meta["crop_size"]) == 128
    # the graph stream exports as plain row gathers and matmuls (fast on a CPU): no per-element
    # gathers, scatters, einsums or index expansion
    import onnx

    ops = {node.op_type for node in onnx.load(str(rep.path)).graph.node}
    assert not ops & {"GatherElements", "ScatterElements", "ScatterND", "Einsum", "Expand"}
    # one fold's model is its seed ensemble, each member with its calibrated temperature
    assert json.loads(meta["members"]) == 2 and len(json.loads(meta["temperatures"])) == 2
    # independent parity on real featurised frames, at batch 1 and 64 (dynamic batch)
    members, _ = load_members(run / "folds" / f"fold_{rep.folds[0]}" / "model.pt")
    sess = ort_session(rep.path)
    idx = np.resize(np.arange(len(prep)), 64)
    nodes, edges = featurise(prep.keypoints[idx], prep.conf[idx])
    for b in (1, 64):
        got = sess.run(["stance_prob"], {"nodes": nodes[:b], "edge_attr": edges[:b]})[0]
        with torch.no_grad():
            ref = torch.stack(
                [
                    (m(torch.from_numpy(nodes[:b]), torch.from_numpy(edges[:b]))["stance"])
                    .div(m.temperature)
                    .softmax(-1)
                    for m in members
                ]
            ).mean(0)
        assert got.shape == (b, len(prep.taxonomy.classes))
        assert np.abs(got - ref.numpy()).max() <= 1e-4
    assert load_checkpoint(run / "folds" / "fold_0" / "model.pt")[1]["fold"] == 0
    ens = export_run(run, tmp_path / "ens.onnx", ensemble=True)
    assert ens.folds == [0, 1, 2] and max(ens.parity.values()) <= 1e-4
    assert json.loads(read_metadata(ens.path)["ensemble"]) is True
    # the ensemble is the mean of every fold's members
    models = [
        m for k in range(3) for m in load_members(run / "folds" / f"fold_{k}" / "model.pt")[0]
    ]
    got = ort_session(ens.path).run(["stance_prob"], {"nodes": nodes, "edge_attr": edges})[0]
    with torch.no_grad():
        ref = ExportModule(models)(torch.from_numpy(nodes), torch.from_numpy(edges))[0]
    assert np.abs(got - ref.numpy()).max() <= 1e-4
    with pytest.raises(FileExistsError):
        export_run(run, tmp_path / "m.onnx")


def test_export_full_geopose_with_crops(tmp_path, toy_dataset):
    ds = toy_dataset(tmp_path, n_subjects=2, per_class=1, image_size=64)
    prep = prepare(ds, crops=True, group="none")
    with pytest.warns(UserWarning, match="RANDOM"):
        run_experiment(
            prep,
            TrainConfig(
                model="geopose", epochs=1, batch_size=4, aug_views=1, visual="mobilenet", members=1
            ),
            tmp_path / "run",
            n_folds=2,
        )
    rep = export_run(tmp_path / "run", tmp_path / "g.onnx")
    assert rep.inputs == ["nodes", "edge_attr", "crop"]
    assert rep.outputs == ["stance_prob", "family_prob", "chamber_prob", "geometry"]
    assert max(rep.parity.values()) <= 1e-4


def test_export_refuses_baseline_runs(tmp_path, toy_dataset):
    pytest.importorskip("trainer.baselines")
    ds = toy_dataset(tmp_path, n_subjects=2, per_class=2, image_size=64)
    run_experiment(prepare(ds), TrainConfig(model="angles-rf"), tmp_path / "rf", n_folds=2)
    with pytest.raises(FileNotFoundError, match="not a neural network"):
        export_run(tmp_path / "rf", tmp_path / "rf.onnx")
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        export_run(tmp_path, tmp_path / "x.onnx")
