"""qvac_nb.batch on Ray actors, on a local Ray cluster this module starts (2 CPUs, no dashboard, no network).

Skipped only when Ray is not installed (`pip install 'qvac_nb[ray]'`; the `test` extra, which CI installs,
includes it). Ray is heavy on a 2-core machine: one cluster for the module, six 64x64 one-step images.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray  # in the test extra: a missing Ray fails the suite here rather than skipping the test
from conftest import THREADS
from helpers import pixels

import qvac_nb

SMALL = {"width": 64, "height": 64, "steps": 1}
WAIT_S = 900.0


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report over the network
    # Ray's workers inherit this environment, PYTHONPATH included, so they import the qvac_nb under test.
    for attempt in (1, 2, 3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, logging_level="warning")
            break
        except Exception as exc:  # Ray waits a fixed 30 s for its raylet: too little on a busy 2-core machine
            ray.shutdown()
            if attempt == 3 or "timed out during startup" not in str(exc):
                raise
    try:
        yield ray
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = saved


def test_six_items_on_two_actors_one_killed_match_local_pixels_and_a_rerun_skips(
        ray_cluster: Any, sd1_model: Any, sd1_id: str, tmp_path: Path) -> None:
    @ray.remote(num_cpus=0)
    def where() -> str:
        import qvac_nb as nb

        return str(Path(nb.__file__).resolve().parent)

    assert ray.get(where.remote()) == str(Path(qvac_nb.__file__).resolve().parent)

    config = {"threads": THREADS, **sd1_model.model_config()}
    items = ["a red fox", "a blue whale", {"prompt": "a lighthouse", "seed": 11}, "a red fox", "a tree",
             {"prompt": "a boat", "cfg_scale": 4.0}]
    finished: list[Any] = []
    handle = qvac_nb.batch(items, model_src=str(sd1_model.primary), model_config=config, output_dir=tmp_path,
                           cluster="ray", workers=2, progress=False, wait=False, on_record=finished.append,
                           **SMALL)
    deadline = time.monotonic() + WAIT_S
    while not (finished and (running := [r for r in handle.running() if r["pid"]])):
        assert time.monotonic() < deadline and not handle.done(), "no item finished while another ran"
        time.sleep(0.05)
    os.kill(running[0]["pid"], signal.SIGKILL)  # an actor lost mid-batch, with an item in flight
    result = handle.result(WAIT_S)

    assert [r.status for r in result] == ["ok"] * 6, [r.error for r in result]
    assert result.workers_replaced >= 1 and any(r.attempts == 2 for r in result)
    assert len({r.worker for r in result}) >= 2 and all(r.worker.startswith("ray-") for r in result)
    assert result.records[0].seed != result.records[3].seed  # the same prompt twice: two images
    for record in result:  # the same images plain diffusion() makes in this kernel
        replay = qvac_nb.png.replayable_params(record.parameters)
        local = pixels(qvac_nb.diffusion(model_id=sd1_id, **replay).outputs.result(WAIT_S)[0])
        np.testing.assert_array_equal(pixels(record.path.read_bytes()), local)
    assert len(qvac_nb.history(tmp_path)) == 6

    again = qvac_nb.batch(items, model_src=str(sd1_model.primary), model_config=config, output_dir=tmp_path,
                          cluster="ray", workers=2, progress=False, **SMALL)
    assert [r.status for r in again] == ["skipped"] * 6 and again.workers == 0  # no actor started for nothing
    assert [r.path for r in again] == [r.path for r in result] and len(list(tmp_path.glob("*.png"))) == 6


def test_only_a_cluster_qvac_nb_starts_gets_token_auth_set_explicitly() -> None:
    from qvac_nb.batching.ray_backend import new_cluster_env

    # A new local cluster: Ray's own secure default, said explicitly, so Ray has nothing to warn about.
    assert new_cluster_env("ray", {}, ray_imported=False) == {"RAY_AUTH_MODE": "token"}
    # An existing cluster keeps its own mode; the user's setting wins; an imported Ray has read its mode already.
    assert new_cluster_env("auto", {}, ray_imported=False) == {}
    assert new_cluster_env("ray://head:10001", {}, ray_imported=False) == {}
    assert new_cluster_env("ray", {"RAY_ADDRESS": "head:6379"}, ray_imported=False) == {}
    assert new_cluster_env("ray", {"RAY_AUTH_MODE": "disabled"}, ray_imported=False) == {}
    assert new_cluster_env("ray", {}, ray_imported=True) == {}
