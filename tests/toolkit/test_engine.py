"""``toolkit.engine``: local and Ray engines give the same results; retries; a 2-node cluster."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.engine import LocalEngine, Task, open_engine

# One Ray instance at a time in a test process: every Ray test runs in this xdist group.
pytestmark = pytest.mark.xdist_group("ray")

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "arnis"
FAST = ["--weights", "yolo11n-pose.pt", "--imgsz", "160", "--every", "30"]


def seeded_draws(n: int) -> tuple[list[float], list[float], int]:
    """Numbers from the global generators, and torch's thread count, inside a task."""
    import torch

    return np.random.rand(n).tolist(), torch.rand(n).tolist(), torch.get_num_threads()


def dataset_doc(path: Path) -> dict:
    """``dataset.json`` without the journal marker (a random id per save)."""
    doc = orjson.loads((path / "dataset.json").read_bytes())
    doc.pop("journal", None)
    return doc


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    """A short video and a folder of two images."""
    root = tmp_path_factory.mktemp("sources")
    (root / "frames").mkdir()
    for i, name in enumerate(sorted((SAMPLES / "images" / "forward_high").glob("*.jpg"))[:2]):
        shutil.copy(name, root / "frames" / f"frame_{i}.jpg")
    shutil.copy(SAMPLES / "videos" / "s01_drill.mp4", root / "s01_drill.mp4")
    return [root / "s01_drill.mp4", root / "frames"]


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each on this machine (``ray.cluster_utils.Cluster``)."""
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Default node addresses: Ray turns a 127.0.0.1 bootstrap address into the node's own IP.
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


# ---------------------------------------------------------------------- no Ray needed
def test_local_engine_seeds_each_task_and_restores_threads():
    import torch

    before = torch.get_num_threads()
    eng = LocalEngine()
    seen = []
    tasks = [Task(seeded_draws, (3,), seed=s, threads=1, weight=2) for s in (5, 7, 5)]
    out = eng.run(tasks, on_result=lambda i, r: seen.append(i))
    assert seen == [0, 1, 2]
    assert out[0] == out[2] and out[0] != out[1]  # the same seed, the same numbers
    assert out[0][2] == 1  # the task's thread count, whatever the process had
    assert torch.get_num_threads() == before


def test_engine_options_are_checked(monkeypatch, tmp_path):
    res = run_cli(
        "detect", tmp_path, "--weights", "x.pt", "--out", tmp_path / "o", "--address", "a"
    )
    assert res.exit_code == 2 and "--engine ray" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r"arnis-suite\[distributed\]"), open_engine("ray"):
        pass
    res = run_cli(
        "detect", tmp_path, "--weights", "x.pt", "--out", tmp_path / "o", "--engine", "ray"
    )
    assert res.exit_code == 2 and "arnis-suite[distributed]" in res.output


def test_per_source_names_must_differ(tmp_path, sources):
    other = tmp_path / "x" / "frames"
    shutil.copytree(sources[1], other)
    res = run_cli("detect", sources[1], other, *FAST, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "--merge" in res.output
    assert not (tmp_path / "out").exists()


def test_merge_keeps_every_source(tmp_path, sources):
    res = run_cli("detect", *sources, *FAST, "--out", tmp_path / "all", "--merge")
    assert res.exit_code == 0, res.output
    from toolkit.dataset import Dataset

    ds = Dataset.load(tmp_path / "all")
    single = [run_cli("detect", s, *FAST, "--out", tmp_path / s.stem) for s in sources]
    assert all(r.exit_code == 0 for r in single)
    parts = [Dataset.load(tmp_path / s.stem) for s in sources]
    assert len(ds.images) == sum(len(p.images) for p in parts)
    np.testing.assert_array_equal(ds.keypoints, np.concatenate([p.keypoints for p in parts]))
    assert ds.images["id"].is_unique and ds.annotations["id"].is_unique
    assert [v["file_name"] for v in ds.videos] == ["s01_drill.mp4"]
    assert ds.images["file_name"].tolist()[-2:] == ["frames/frame_0.jpg", "frames/frame_1.jpg"]
    assert not ds.missing_media()  # every frame resolves from the merged media_root
    info = ds.meta["detect"]
    assert [s["name"] for s in info["sources"]] == ["s01_drill", "frames"]
    assert info["n_frames"] == len(ds.images)


# ---------------------------------------------------------------------- on a 2-node cluster
def test_detect_on_a_two_node_cluster_matches_local(tmp_path, sources, cluster):
    local = run_cli("detect", *sources, *FAST, "--out", tmp_path / "local")
    assert local.exit_code == 0, local.output
    ray_run = run_cli(
        "detect",
        *sources,
        *FAST,
        "--out",
        tmp_path / "ray",
        "--engine",
        "ray",
        "--address",
        cluster.address,
        "--workers",
        "2",
    )
    assert ray_run.exit_code == 0, ray_run.output
    for name in ("s01_drill", "frames"):
        assert dataset_doc(tmp_path / "local" / name) == dataset_doc(tmp_path / "ray" / name)
        assert (tmp_path / "local" / name / "dataset.json").stat().st_size == (
            tmp_path / "ray" / name / "dataset.json"
        ).stat().st_size
    merged = [
        run_cli("detect", *sources, *FAST, "--out", tmp_path / f"m_{e}", "--merge", *extra)
        for e, extra in (("local", []), ("ray", ["--engine", "ray", "--address", cluster.address]))
    ]
    assert all(r.exit_code == 0 for r in merged), [r.output for r in merged]
    assert dataset_doc(tmp_path / "m_local") == dataset_doc(tmp_path / "m_ray")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".partial", ".tmp"))]


def test_tasks_spread_over_both_nodes_and_a_killed_worker_is_retried(tmp_path, cluster):
    marker = tmp_path / "attempts"

    def node_of(delay: float) -> str:
        import time

        import ray

        time.sleep(delay)
        return ray.get_runtime_context().get_node_id()

    def dies_once(marker: str, n: int) -> bytes:
        p = Path(marker)
        with p.open("a") as fh:
            fh.write("attempt\n")
        if len(p.read_text().splitlines()) == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-task
        return bytes(range(n)) * 100

    from toolkit.fileio import atomic_write_bytes

    out = tmp_path / "result.bin"
    with open_engine("ray", address=cluster.address, max_retries=2) as eng:
        nodes = eng.run([Task(node_of, (1.5,), label=f"n{i}") for i in range(2)])
        assert len(set(nodes)) == 2  # one CPU per node: the two tasks ran on both nodes
        eng.run(
            [Task(dies_once, (str(marker), 200), label="dies once")],
            on_result=lambda i, data: atomic_write_bytes(out, data),
        )
    assert marker.read_text().splitlines() == ["attempt", "attempt"]
    assert out.read_bytes() == bytes(range(200)) * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attempts", "result.bin"]


def test_a_task_error_stops_the_job_as_itself(tmp_path, cluster):
    from toolkit.errors import InputError

    def bad(x: int) -> int:
        if x == 1:
            raise InputError("Expected a good frame, but got a bad one.", "clip.mp4", 3)
        return x

    with (
        open_engine("ray", address=cluster.address) as eng,
        pytest.raises(InputError, match="bad one"),
    ):
        eng.run([Task(bad, (i,)) for i in range(3)])
