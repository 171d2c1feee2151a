"""qvac_nb.batch on local worker processes: pixels, resume, failures, lost workers, validation, cancel.

Images are 64x64 with one step of the random-weight SD 1.x test model (each still takes seconds on a
shared 2-core machine), so the tests share the plain diffusion() references they compare against.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import THREADS
from helpers import assert_real_image, pixels, python_sigint_handler

import qvac_nb
from qvac_nb import history_folder
from qvac_nb.batching import items as batch_items

SMALL = {"width": 64, "height": 64, "steps": 1}
WAIT_S = 600.0  # bounded waits: a loaded 2-core machine makes one of these images in 5-40 s


@pytest.fixture(scope="module")
def config(sd1_model: Any) -> dict[str, Any]:
    return {"threads": THREADS, **sd1_model.model_config()}


@pytest.fixture(scope="module")
def reference(sd1_id: str) -> Callable[[dict[str, Any]], np.ndarray]:
    """The pixels plain diffusion() makes for a record's parameters (cached: each costs seconds)."""
    cache: dict[str, np.ndarray] = {}

    def make(parameters: dict[str, Any]) -> np.ndarray:
        replay = qvac_nb.png.replayable_params(parameters)
        key = json.dumps(replay, sort_keys=True)
        if key not in cache:
            job = qvac_nb.diffusion(model_id=sd1_id, **replay)
            cache[key] = pixels(job.outputs.result(WAIT_S)[0])
        return cache[key]

    return make


_PRIVATE_BEFORE: set[str] = set()  # private copies loaded before the test (the session's test models)


@pytest.fixture(autouse=True)
def _private_models_before() -> None:
    _PRIVATE_BEFORE.clear()
    _PRIVATE_BEFORE.update(m for m in qvac_nb.loaded_models() if not qvac_nb.models.get_model(m).shared)


def _no_batch_models() -> bool:
    # Batch copies are private: load_model never returns them, and each batch unloads its own.
    return all(qvac_nb.models.get_model(m).shared or m in _PRIVATE_BEFORE for m in qvac_nb.loaded_models())


def test_two_workers_match_plain_diffusion_a_bad_item_fails_alone_and_a_rerun_skips(
        sd1_model: Any, config: dict[str, Any], reference: Callable, tmp_path: Path) -> None:
    items = ["a red fox", {"prompt": "a blue whale", "seed": 7, "cfg_scale": 5.0},
             # Passes the schema, but the worker's memory guard refuses it on this machine: recorded, not fatal.
             {"prompt": "far too big", "width": 4096, "height": 4096}]
    result = qvac_nb.batch(items, model_src=str(sd1_model.primary), model_config=config, output_dir=tmp_path,
                           workers=2, progress=False, **SMALL)
    ok, bad = result.records[:2], result.records[2]
    assert [r.status for r in result] == ["ok", "ok", "failed"]
    assert bad.path is None and "width" in bad.error and "GiB" in bad.error
    assert {r.worker for r in ok} <= {"local-1", "local-2"} and result.workers == 2
    assert ok[1].seed == 7 and ok[0].seed != -1  # a seed derived from the parameters, not a random one
    for record in ok:
        assert record.parameters["seed"] == record.seed and record.parameters["steps"] == 1
        assert record.generation_ms > 0 and record.wall_ms >= record.generation_ms
        got = assert_real_image(record.path.read_bytes(), 64, 64)
        np.testing.assert_array_equal(got, reference(record.parameters))
        assert qvac_nb.read_parameters(record.path)["prompt"] == record.prompt
    # The Studio's history format: both images are in the index with their keys.
    assert {r.path for r in qvac_nb.history(tmp_path)} == {r.path for r in ok}
    assert set(history_folder.done_keys(tmp_path)) == {r.key for r in ok}
    assert _no_batch_models()

    again = qvac_nb.batch(items, model_src=str(sd1_model.primary), model_config=config, output_dir=tmp_path,
                          workers=2, progress=False, **SMALL)
    assert [r.status for r in again] == ["skipped", "skipped", "failed"]  # only the failed item ran again
    assert [r.path for r in again.records[:2]] == [r.path for r in ok]
    assert len(list(tmp_path.glob("*.png"))) == 2


def test_a_killed_worker_is_replaced_and_its_item_retried(sd1_model: Any, config: dict[str, Any],
                                                          reference: Callable, tmp_path: Path) -> None:
    handle = qvac_nb.batch(["a red fox"], model_src=str(sd1_model.primary), model_config=config,
                           output_dir=tmp_path, progress=False, wait=False, **SMALL)
    deadline = time.monotonic() + WAIT_S
    while not (running := [r for r in handle.running() if r["pid"]]):
        assert time.monotonic() < deadline and not handle.done(), "the item never started"
        time.sleep(0.02)
    os.kill(running[0]["pid"], signal.SIGKILL)  # the engine worker dies mid-item
    result = handle.result(WAIT_S)
    record = result.records[0]
    assert record.status == "ok" and record.attempts == 2 and result.workers_replaced == 1
    np.testing.assert_array_equal(pixels(record.path.read_bytes()), reference(record.parameters))


def test_every_bad_item_is_reported_before_anything_runs(sd1_model: Any, config: dict[str, Any],
                                                         tmp_path: Path) -> None:
    loaded = set(qvac_nb.loaded_models())
    items = ["fine", {"prompt": "x", "steps": 0}, {"prompt": "y", "sampling_method": "eulr"}, {"steps": 2},
             {"prompt": "z", "width": 96}, 42]
    with pytest.raises(qvac_nb.InvalidTypeError, match="item 5 is a int"):
        qvac_nb.batch(items, model_src=str(sd1_model.primary), model_config=config, output_dir=tmp_path)
    with pytest.raises(qvac_nb.BatchValidationError) as info:
        qvac_nb.batch(items[:5], model_src=str(sd1_model.primary), model_config=config, output_dir=tmp_path)
    message = str(info.value)
    assert [n for n, _ in info.value.errors] == [1, 2, 3, 4] and "4 of 5 items are invalid" in message
    assert "item 1" in message and "steps" in message
    assert "sampling_method" in message and "euler" in message  # the closest name suggested
    assert "item 3" in message and "prompt" in message
    assert "item 4" in message and "width: 96" in message and "64" in message  # SD 1.x sizes: multiples of 64
    assert isinstance(info.value, qvac_nb.InvalidParameterError) and info.value.param == "items"
    with pytest.raises(qvac_nb.UnknownParameterError, match="stesp"):
        qvac_nb.batch(["a"], model_src=str(sd1_model.primary), model_config=config, output_dir=tmp_path, stesp=2)
    with pytest.raises(qvac_nb.InvalidParameterError, match="model_id"):
        qvac_nb.batch([{"prompt": "a", "model_id": "x"}], model_src=str(sd1_model.primary), output_dir=tmp_path)
    with pytest.raises(qvac_nb.InvalidTypeError, match="items"):
        qvac_nb.batch("one prompt", model_src=str(sd1_model.primary), output_dir=tmp_path)
    with pytest.raises(qvac_nb.InvalidParameterError, match="workers"):
        qvac_nb.batch(["a"], model_src=str(sd1_model.primary), output_dir=tmp_path, workers=0)
    assert set(qvac_nb.loaded_models()) == loaded and not any(tmp_path.iterdir())  # nothing loaded or written


def test_items_are_keyed_by_parameters_and_model_and_seeds_are_stable() -> None:
    model = batch_items.model_identity("m.gguf", {"threads": 2})
    prepare = lambda items, **kw: batch_items.prepare(items, kw, model=model, family="sd1", names=None,  # noqa: E731
                                                      has_upscaler=False)
    first = prepare(["a", "a", {"prompt": "a", "seed": 3, "batch_count": 2}], steps=2)
    assert [i.seed for i in first][2:] == [3, 4] and len(first) == 4
    assert first[0].seed != first[1].seed  # the same prompt twice: two images
    assert [i.key for i in prepare(["a", "a", {"prompt": "a", "seed": 3, "batch_count": 2}], steps=2)] == \
        [i.key for i in first]  # a re-run finds the same keys
    assert prepare(["a"], steps=2)[0].key == first[0].key  # items around it do not change an item's key
    assert prepare(["a"], steps=3)[0].key != first[0].key
    other_model = batch_items.prepare(["a"], {"steps": 2}, model=batch_items.model_identity("n.gguf", {}),
                                      family="sd1", names=None, has_upscaler=False)
    assert other_model[0].key != first[0].key

    class Frame:  # the two things batch reads from a pandas DataFrame
        columns = ["prompt", "seed"]

        def to_dict(self, orient: str) -> list[dict[str, Any]]:
            assert orient == "records"
            return [{"prompt": "a", "seed": 5}, {"prompt": "b", "seed": float("nan")}]

    rows = prepare(Frame())
    assert rows[0].seed == 5 and rows[1].params["prompt"] == "b" and rows[1].seed >= 0  # NaN: not given


def test_cancel_stops_every_worker(sd1_model: Any, config: dict[str, Any], tmp_path: Path) -> None:
    import psutil

    # No threads given: the two workers share the engine's default count instead of each taking all of it.
    shared = {key: value for key, value in config.items() if key != "threads"}
    handle = qvac_nb.batch(["a", "b", "c", "d"], model_src=str(sd1_model.primary), model_config=shared,
                           output_dir=tmp_path, workers=2, progress=False, wait=False, **SMALL)
    deadline = time.monotonic() + WAIT_S
    while not (running := [r["pid"] for r in handle.running() if r["pid"]]):
        assert time.monotonic() < deadline and not handle.done(), "nothing started"
        time.sleep(0.02)
    copies = [m for m in qvac_nb.loaded_models() if m not in _PRIVATE_BEFORE and not qvac_nb.models.get_model(m).shared]
    cores = qvac_nb.engine.resolve_threads(-1)
    assert len(copies) == 2
    assert [qvac_nb.models.get_model(m).config["threads"] for m in copies] == [max(1, cores // 2)] * 2
    handle.cancel()
    result = handle.result(60.0)
    assert result.cancelled and [r.status for r in result].count("cancelled") >= 2
    assert all(r.error == "cancelled" for r in result if r.status == "cancelled")
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in running if psutil.pid_exists(p)], timeout=10)
    assert not alive
    assert _no_batch_models()


def test_cli_batch_reads_prompts_and_jsonl_and_resumes(sd1_model: Any, config: dict[str, Any], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from qvac_nb import cli

    bad = tmp_path / "params.jsonl"
    bad.write_text('{"prompt": "a", "steps": 1}\n\n[1, 2]\n')
    assert cli.main(["-q", "batch", str(bad), "--model", str(sd1_model.primary), "-o", str(tmp_path / "o")]) == 2
    assert "line 3" in capsys.readouterr().err and not (tmp_path / "o").exists()
    good = tmp_path / "ok.jsonl"
    good.write_text('"a red fox"\n{"prompt": "a blue whale", "seed": 3}\n')
    assert cli.read_items(str(good)) == ["a red fox", {"prompt": "a blue whale", "seed": 3}]

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\n\na red fox\n")
    argv = ["-q", "batch", str(prompts), "--model", str(sd1_model.primary), "-o", str(tmp_path / "out"),
            "-W", "64", "-H", "64", "--steps", "1", "--model-config", json.dumps(config)]
    assert cli.main(argv) == 0
    made = capsys.readouterr().out.split()
    assert len(made) == 1 and qvac_nb.read_parameters(made[0])["prompt"] == "a red fox"
    assert cli.main(argv) == 0 and capsys.readouterr().out == ""  # done already: nothing new

    # Done already on Ray too: nothing imports Ray (`import ray` fails here) or starts a cluster.
    monkeypatch.setitem(sys.modules, "ray", None)
    assert cli.main([*argv, "--ray"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == ""
    # The time reported covers the whole call, its setup included (here a slowed look at what is done).
    real_done_keys = history_folder.done_keys

    def slow_done_keys(folder: Path) -> Any:
        time.sleep(0.5)
        return real_done_keys(folder)

    monkeypatch.setattr(history_folder, "done_keys", slow_done_keys)
    again = qvac_nb.batch(["a red fox"], model_src=str(sd1_model.primary), model_config=config,
                          output_dir=tmp_path / "out", cluster="ray", workers=2, progress=False, **SMALL)
    assert [r.status for r in again] == ["skipped"] and again.workers == 0
    assert again.elapsed_s >= 0.5 and again.items_per_s == 0.0
    assert _no_batch_models()


@pytest.mark.parametrize(("workers", "cores", "threads"), [(2, 2, 1), (1, 2, 2), (3, 2, 1), (2, 8, 4), (3, 8, 2)])
def test_local_workers_share_the_cores(workers: int, cores: int, threads: int) -> None:
    from qvac_nb.batching.local import threads_per_worker

    assert threads_per_worker(workers, cores) == threads


def test_ctrl_c_in_the_blocking_form_stops_every_worker(sd1_model: Any, config: dict[str, Any],
                                                         tmp_path: Path) -> None:
    import _thread
    import threading

    import psutil

    pids: list[int] = []
    before = set(qvac_nb.loaded_models())  # the session's models (and any a test before is still unloading)

    def batch_workers_running_an_item() -> list[int]:
        live = []
        for model_id in set(qvac_nb.loaded_models()) - before:
            r = qvac_nb.runner.runner_for(model_id)
            worker = r.worker if r is not None else None
            if worker is not None and r.jobs():
                live.append(worker.proc.pid)
        return live

    def interrupt_once_an_item_runs() -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            live = batch_workers_running_an_item()
            if live:
                pids.extend(live)
                _thread.interrupt_main()  # what Ctrl-C does to a cell waiting on batch()
                return
            time.sleep(0.02)

    with python_sigint_handler():  # as in a Jupyter kernel, whatever the shell that started pytest left
        threading.Thread(target=interrupt_once_an_item_runs, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            qvac_nb.batch(["a", "b", "c"], model_src=str(sd1_model.primary), model_config=config,
                          output_dir=tmp_path, workers=2, progress=False, **SMALL)
    assert pids
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    assert not alive and _no_batch_models()


def test_ray_missing_is_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch, sd1_model: Any,
                                                       tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r"qvac_nb\[ray\]"):
        qvac_nb.batch(["a"], model_src=str(sd1_model.primary), output_dir=tmp_path, cluster="ray", progress=False)
