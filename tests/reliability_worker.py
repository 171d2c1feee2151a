"""The reliability suite's child process: runs cases that might crash the engine, away from pytest.

    python reliability_worker.py ITEMS.json OUT.jsonl

ITEMS.json is a list of item names (bad-input cases, scenarios) or of file-load records
({"name", "mode", "primary", "config"}). Each item's result is appended to OUT.jsonl as
one JSON line, after a {"start": name} line, so a parent that sees the process die
knows which item killed it and restarts the worker with the rest (run_items does this).
"""

from __future__ import annotations

import gc
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

THREADS = int(os.environ.get("QVAC_NB_TEST_THREADS", "2"))
TINY = {"width": 64, "height": 64, "steps": 1, "seed": 7}


# ---------------------------------------------------------------- the parent side


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # ggml's abort handler attaches gdb for a backtrace, which can take minutes or hang.
    return {**os.environ, "GGML_NO_BACKTRACE": "1", **(extra or {})}


def run_items(items: list[Any], out_dir: Path, *, item_timeout: float = 900, env: dict[str, str] | None = None
              ) -> dict[str, dict[str, Any]]:
    """Run `items` in worker processes, restarting after a crash; one result record per item name.

    An item that runs for more than `item_timeout` seconds counts as hung: its worker is
    killed and the item reported like a crash.
    """
    results: dict[str, dict[str, Any]] = {}
    names = [item if isinstance(item, str) else item["name"] for item in items]
    remaining = list(items)
    attempt = 0
    while remaining and attempt <= len(items):
        attempt += 1
        todo = out_dir / f"items-{attempt}.json"
        out = out_dir / f"results-{attempt}.jsonl"
        errors = out_dir / f"stderr-{attempt}.txt"
        todo.write_text(json.dumps(remaining))
        with open(errors, "w") as err:
            # SIGINT as a terminal gives it (the keyboard-interrupt scenario), even when pytest runs in the background.
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(todo), str(out)],
                                    stdout=subprocess.DEVNULL, stderr=err, env=child_env(env),
                                    preexec_fn=_default_sigint)
            code = _watch(proc, out, item_timeout)
        stderr = errors.read_text(errors="replace")
        current = None
        for line in out.read_text().splitlines() if out.exists() else []:
            record = json.loads(line)
            if "start" in record:
                current = record["start"]
            else:
                results[record["name"]] = record
                current = None
        if current is not None:
            results[current] = {"name": current, "ok": False, "crashed": True, "exit": code, "stderr": stderr[-3000:]}
        elif code != 0:
            # Died between items (e.g. at exit): blame the rest so nothing passes unseen.
            for name in names:
                results.setdefault(name, {"name": name, "ok": False, "crashed": True, "exit": code,
                                          "stderr": stderr[-3000:]})
        remaining = [item for item, name in zip(items, names, strict=True) if name not in results]
    return results


def _default_sigint() -> None:
    """A worker's SIGINT back to the default a terminal gives: a shell's background job (`cmd &`) starts with it
    ignored, and Python leaves an ignored SIGINT ignored (helpers.restore_sigint does the same for other tests)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _watch(proc: subprocess.Popen, out: Path, item_timeout: float) -> int | str:
    """Wait for the worker; kill it when no item has finished for `item_timeout` seconds."""
    last_size, last_change = -1, time.monotonic()
    while proc.poll() is None:
        size = out.stat().st_size if out.exists() else 0
        if size != last_size:
            last_size, last_change = size, time.monotonic()
        elif time.monotonic() - last_change > item_timeout:
            proc.kill()
            proc.wait()
            return "timeout"
        time.sleep(0.2)
    return proc.returncode


# ---------------------------------------------------------------- the worker side


class Env:
    """Models and scratch files the items share, loaded on first use."""

    def __init__(self) -> None:
        from testmodels import registry

        import qvac_nb

        self.qvac_nb = qvac_nb
        self.registry = registry
        self.tmp = Path(tempfile.mkdtemp(prefix="qvac-reliability-"))
        self._ids: dict[str, str] = {}
        self.contacts = 0  # worker processes started + work sent to a worker (a case that made none is kernel-only)
        self._count_contacts()

    def _count_contacts(self) -> None:
        from qvac_nb import runner
        from qvac_nb.worker import process

        def counted(method: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                self.contacts += 1
                return method(*args, **kwargs)
            return call

        process.WorkerProcess.__init__ = counted(process.WorkerProcess.__init__)  # type: ignore[method-assign]
        runner.ModelRunner.submit = counted(runner.ModelRunner.submit)  # type: ignore[method-assign]

    def model(self, name: str) -> Any:
        return self.registry.get(name)

    def load(self, name: str, **extra: Any) -> str:
        key = name + json.dumps(extra, sort_keys=True)
        if key not in self._ids or self._ids[key] not in self.qvac_nb.loaded_models():
            test_model = self.model(name)
            config = {"threads": THREADS, **test_model.model_config(), **extra}
            if test_model.family == "esrgan":
                config["mode"] = "upscale"
            # A private copy: a case's own load_model of the same file and config gets a model of its own.
            from qvac_nb import models

            self._ids[key] = models.load_copy(str(test_model.primary), model_config=config)
        return self._ids[key]

    @property
    def sd1(self) -> str:
        return self.load("sd1")

    @property
    def flux2(self) -> str:
        return self.load("flux2_edit")

    @property
    def up(self) -> str:
        return self.load("esrgan_anime6b_st")

    def generate(self, model_id: str | None = None, **kw: Any) -> list[bytes]:
        # cfg 1: one pass a step; the model still makes a real image (what "alive" checks), at half the work
        params = {"prompt": "a lighthouse", **TINY, "cfg_scale": 1.0, **kw}
        return self.qvac_nb.diffusion(model_id=model_id or self.sd1, **params).outputs.result(timeout=900)

    def load_shared(self, also: tuple[str, ...] = ()) -> None:
        """Load now the SD1 model and those in `also` (what alive() generates with), so that the contacts a case
        makes with workers are its own."""
        _ = self.sd1  # each property loads its model on first use
        if "flux2" in also:
            _ = self.flux2
        if "upscaler" in also:
            _ = self.up

    def workers_running(self) -> bool:
        """Every model this process loaded still has its worker process running (no engine call made)."""
        from qvac_nb import runner

        for model_id in self._ids.values():
            model_runner = runner.runner_for(model_id)
            if model_runner is None or model_runner.worker is None or model_runner.worker.proc.poll() is not None:
                return False
        return True

    def alive(self, also: tuple[str, ...] = ()) -> bool:
        """The SD1 model (and the FLUX.2 / upscaler models in `also`) still make real, non-constant images."""
        import numpy as np
        from PIL import Image

        pngs = self.generate(seed=11)
        if "flux2" in also:
            pngs += self.generate(self.flux2, seed=11)
        if "upscaler" in also:
            image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
            pngs += self.qvac_nb.upscale(model_id=self.up, image=image).outputs.result(timeout=900)
        for png in pngs:
            arr = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
            if arr.ndim != 3 or float(arr.std()) <= 1.0:
                return False
        return True


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def _run_one(env: Env, name: str) -> dict[str, Any]:
    if name in CASES:
        return _run_case(env, CASES[name])
    return {"name": name, **SCENARIOS[name](env)}


def _run_load(env: Env, item: dict[str, Any]) -> dict[str, Any]:
    """Load (then generate one tiny image or upscale with) a possibly damaged file.

    Any Python exception is a result, not a failure: what this checks is that the process
    lives. `qvac` says whether the error was a QvacError, as the API promises.
    """
    qvac_nb = env.qvac_nb
    record: dict[str, Any] = {"name": item["name"], "ok": True, "loaded": False, "generated": False}
    model_id = None
    try:
        model_id = qvac_nb.load_model(item["primary"], model_config={"threads": THREADS, **item.get("config", {})})
        record["loaded"] = True
        if item.get("config", {}).get("mode") == "upscale":
            import numpy as np

            qvac_nb.upscale(model_id=model_id, image=np.full((16, 16, 3), 128, np.uint8)).outputs.result(600)
        else:
            env.generate(model_id)
        record["generated"] = True
    except Exception as exc:  # noqa: BLE001 - recorded
        record.update(error=f"{type(exc).__module__}.{type(exc).__name__}", qvac=isinstance(exc, qvac_nb.QvacError),
                      message=str(exc)[:500])
    finally:
        if model_id is not None:
            qvac_nb.unload_model(model_id=model_id)
    return record


def main(items_path: str, out_path: str) -> None:
    items = json.loads(Path(items_path).read_text())
    env = Env()
    with open(out_path, "a") as out:
        for item in items:
            name = item if isinstance(item, str) else item["name"]
            out.write(json.dumps({"start": name}) + "\n")
            out.flush()
            started = time.perf_counter()
            try:
                record = _run_load(env, item) if isinstance(item, dict) else _run_one(env, name)
            except Exception as exc:  # noqa: BLE001 - a failing item is a result, not a worker crash
                record = {"name": name, "ok": False, "error": type(exc).__name__, "message": str(exc)[:1000],
                          "traceback": traceback.format_exc()[-3000:]}
            record["seconds"] = round(time.perf_counter() - started, 2)
            out.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
            out.flush()
    shutil.rmtree(env.tmp, ignore_errors=True)
    sys.stdout.flush()
    # Skip interpreter teardown: the results are written and the engine's static destructors
    # are not what this suite tests.
    os._exit(0)


# ---------------------------------------------------------------- bad-input cases


@dataclass(frozen=True)
class Case:
    name: str
    api: str  # load_model, diffusion, upscale, unload_model, cancel, Studio
    expect: str  # the QvacError subclass the call must raise
    param: str  # what the message must name
    run: Callable[[Env], Any]
    guard: bool = False  # stands in front of an engine crash (see qvac_nb/checks/guards.py)


def _run_case(env: Env, case: Case) -> dict[str, Any]:
    qvac_nb = env.qvac_nb
    record: dict[str, Any] = {"name": case.name, "api": case.api, "expect": case.expect, "param": case.param,
                              "guard": case.guard}
    also = tuple(kind for kind, loaded in (("flux2", "flux2" in case.name), ("upscaler", case.api == "upscale"))
                 if loaded)
    env.load_shared(also)
    contacts = env.contacts
    try:
        result = case.run(env)
        if hasattr(result, "outputs"):
            result.outputs.result(timeout=900)  # an error inside the job counts as raised
        record.update(raised=None, message="")
    except Exception as exc:  # noqa: BLE001 - recorded and judged below
        record.update(raised=type(exc).__name__, qvac=isinstance(exc, qvac_nb.QvacError), message=str(exc)[:600])
    gc.collect()
    try:
        # A case that started no worker and sent no work was refused in this process: its workers are checked
        # for life without a generation. Every case that reached a worker, and the last case (which would show
        # a kernel-side refusal that broke what follows), must still generate real images.
        record["reached_a_worker"] = env.contacts != contacts
        if record["reached_a_worker"] or case.name == LAST_CASE:
            record["alive"] = env.alive(also)
        else:
            record["alive"] = env.workers_running()
    except Exception as exc:  # noqa: BLE001
        record.update(alive=False, alive_error=f"{type(exc).__name__}: {exc}")
    record["ok"] = bool(record["raised"] == case.expect and record.get("qvac") and case.param in record["message"]
                        and record["alive"])
    return record


def _file(env: Env, name: str, data: bytes) -> str:
    path = env.tmp / name
    path.write_bytes(data)
    return str(path)


def _truncated(env: Env, model: str, fraction: float, suffix: str = "") -> str:
    from reliability_files import truncated_copy

    src = env.model(model).primary
    dst = env.tmp / f"cut-{fraction}-{src.name}{suffix}"
    return str(truncated_copy(src, dst, int(src.stat().st_size * fraction)))


def _flux2_without(env: Env, tensor: str) -> str:
    """The FLUX.2 test DiT without one tensor (the engine divides by zero without a key norm)."""
    from reliability_files import read_gguf_layout, write_gguf

    src = env.model("flux2").files["diffusion_model"]
    layout = read_gguf_layout(src)
    layout.tensors = [t for t in layout.tensors if t.name != tensor]
    return str(write_gguf(env.tmp / f"flux2-no-{tensor}.gguf", layout))


def _flux2_with_block(env: Env, index: int) -> str:
    from reliability_files import read_gguf_layout, write_gguf

    layout = read_gguf_layout(env.model("flux2").files["diffusion_model"])
    for t in layout.tensors:
        if t.name.startswith("single_blocks.0.linear1"):
            t.name = f"single_blocks.{index}.linear1.weight"
    return str(write_gguf(env.tmp / f"flux2-block-{index}.gguf", layout))


def _vae_z16(env: Env) -> str:
    """A VAE header for 16-channel latents (SD3/FLUX.1), zero data."""
    from reliability_files import read_st_header, repack_st, write_st

    header = read_st_header(env.model("flux2").files["vae"])
    for name, meta in header.items():
        if name == "decoder.conv_in.weight" or name.startswith("decoder.post_quant_conv.weight"):
            meta["shape"][1] = 16
        if name.startswith("decoder.post_quant_conv."):
            meta["shape"][0] = 16
    return str(write_st(env.tmp / "vae-z16.safetensors", repack_st(header)))


def _wide_llm(env: Env) -> str:
    """A Qwen3 header twice as wide as the FLUX.2 test DiT expects."""
    from reliability_files import read_gguf_layout, write_gguf

    layout = read_gguf_layout(env.model("flux2").files["llm"])
    for t in layout.tensors:
        t.dims = tuple(128 if d == 64 else d for d in t.dims)
    return str(write_gguf(env.tmp / "qwen3-wide.gguf", layout))


def _flux2_cfg(env: Env, **changes: Any) -> dict[str, Any]:
    cfg = {"threads": THREADS, **env.model("flux2").model_config(), **changes}
    return {k: v for k, v in cfg.items() if v is not None}


def _with_free_memory(free: int, call: Callable[[], Any]) -> Any:
    """Run `call` as if only `free` bytes of RAM were available."""
    from qvac_nb.checks import guards

    real = guards.available_memory
    guards.available_memory = lambda: free
    try:
        return call()
    finally:
        guards.available_memory = real


def _studio(env: Env, model_id: str | None = None) -> Any:
    from qvac_nb.widgets import Studio

    return Studio(model_id=model_id) if model_id is not None else Studio()


def _studio_generate(env: Env, **params: Any) -> Any:
    studio = _studio(env, env.sd1)
    try:
        return studio.generate(**params)
    except Exception:
        # The widget shows the error too; the case fails if it does not name the parameter.
        if not studio.error:
            raise AssertionError("the Studio raised but showed no error") from None
        raise


def _build_cases() -> list[Case]:
    import numpy as np

    def q() -> Any:
        import qvac_nb

        return qvac_nb

    sd1_path = lambda e: str(e.model("sd1").primary)  # noqa: E731
    flux2_path = lambda e: str(e.model("flux2").files["diffusion_model"])  # noqa: E731
    up_path = lambda e: str(e.model("esrgan_anime6b_st").primary)  # noqa: E731
    diff = lambda e, **kw: q().diffusion(model_id=e.sd1, **{"prompt": "x", **TINY, **kw})  # noqa: E731
    fdiff = lambda e, **kw: q().diffusion(model_id=e.flux2, **{"prompt": "x", **TINY, **kw})  # noqa: E731
    ups = lambda e, **kw: q().upscale(model_id=e.up, **kw)  # noqa: E731
    img = np.zeros((16, 16, 3), np.uint8)

    return [
        # load_model: arguments
        Case("load_src_not_str", "load_model", "InvalidTypeError", "model_src", lambda e: q().load_model(123)),
        Case("load_src_empty", "load_model", "InvalidParameterError", "model_src", lambda e: q().load_model("")),
        Case("load_src_missing_file", "load_model", "ModelFileError", "model_src",
             lambda e: q().load_model(str(e.tmp / "nope" / "model.gguf"))),
        Case("load_src_directory", "load_model", "ModelFileError", "model_src", lambda e: q().load_model(str(e.tmp))),
        Case("load_type_unknown", "load_model", "InvalidParameterError", "model_type",
             lambda e: q().load_model(sd1_path(e), model_type="audio")),
        Case("load_image_model_as_video", "load_model", "UnsupportedOperationError", "model_type",
             lambda e: q().load_model(sd1_path(e), model_type="video")),
        Case("load_config_not_dict", "load_model", "InvalidTypeError", "model_config",
             lambda e: q().load_model(sd1_path(e), model_config="fast")),
        Case("load_config_threads_zero", "load_model", "InvalidParameterError", "model_config.threads",
             lambda e: q().load_model(sd1_path(e), model_config={"threads": 0})),
        Case("load_config_key_typo", "load_model", "UnknownParameterError", "thraeds",
             lambda e: q().load_model(sd1_path(e), model_config={"thraeds": 2})),
        Case("load_unknown_kwarg", "load_model", "UnknownParameterError", "modelconfig",
             lambda e: q().load_model(sd1_path(e), modelconfig={})),
        Case("load_weight_type_without_quantizer", "load_model", "InvalidParameterError", "model_config.type",
             lambda e: q().load_model(flux2_path(e), model_config=_flux2_cfg(e, type="q8_K")), guard=True),
        Case("load_weight_type_integer", "load_model", "InvalidParameterError", "model_config.type",
             lambda e: q().load_model(flux2_path(e), model_config=_flux2_cfg(e, type="i32")), guard=True),
        # load_model: damaged files
        Case("load_truncated_sd_gguf", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_truncated(e, "sd1", 0.5))),
        Case("load_truncated_sd_gguf_header", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_truncated(e, "sd1", 0.00005))),
        Case("load_truncated_esrgan_safetensors", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_truncated(e, "esrgan_anime6b_st", 0.7), model_type="upscale")),
        Case("load_truncated_esrgan_pth", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_truncated(e, "esrgan_anime6b", 0.9), model_type="upscale")),
        Case("load_flux2_missing_key_norm", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_flux2_without(e, "single_blocks.0.norm.key_norm.scale"),
                                      model_config=_flux2_cfg(e))),
        Case("load_flux2_missing_both_key_norms", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_flux2_without_both(e), model_config=_flux2_cfg(e)), guard=True),
        Case("load_flux2_block_index_huge", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_flux2_with_block(e, 100_000), model_config=_flux2_cfg(e)), guard=True),
        Case("load_random_bytes", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_file(e, "noise.safetensors", os.urandom(4096)))),
        Case("load_empty_file", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_file(e, "empty.gguf", b""))),
        Case("load_legacy_pickle_pth", "load_model", "CorruptModelError", "model_src",
             lambda e: q().load_model(_file(e, "legacy.pth", pickle.dumps({"conv_first.weight": [0.0] * 64}, 2)),
                                      model_type="upscale")),
        # load_model: companions
        Case("load_flux2_without_llm", "load_model", "InvalidParameterError", "llm_model_src",
             lambda e: q().load_model(flux2_path(e), model_config=_flux2_cfg(e, llm_model_src=None))),
        Case("load_flux2_vae_for_16ch", "load_model", "UnsupportedOperationError", "vae_model_src",
             lambda e: q().load_model(flux2_path(e), model_config=_flux2_cfg(e, vae_model_src=_vae_z16(e))),
             ),
        Case("load_flux2_llm_as_vae", "load_model", "UnsupportedOperationError", "vae_model_src",
             lambda e: q().load_model(flux2_path(e), model_config=_flux2_cfg(
                 e, vae_model_src=str(e.model("flux2").files["llm"])))),
        Case("load_flux2_llm_too_wide", "load_model", "UnsupportedOperationError", "llm_model_src",
             lambda e: q().load_model(flux2_path(e), model_config=_flux2_cfg(e, llm_model_src=_wide_llm(e))),
             guard=True),
        Case("load_sd1_with_llm", "load_model", "UnsupportedOperationError", "llm_model_src",
             lambda e: q().load_model(sd1_path(e), model_config={"llm_model_src": str(e.model("flux2").files["llm"])}),
             ),
        Case("load_esrgan_as_diffusion", "load_model", "UnsupportedOperationError", "model_src",
             lambda e: q().load_model(up_path(e))),
        Case("load_sd1_as_upscaler", "load_model", "UnsupportedOperationError", "model_src",
             lambda e: q().load_model(sd1_path(e), model_type="upscale")),
        Case("load_upscaler_is_a_vae", "load_model", "UnsupportedOperationError", "upscaler.model_src",
             lambda e: q().load_model(flux2_path(e), model_config=_flux2_cfg(
                 e, upscaler=str(e.model("flux2").files["vae"])))),
        Case("load_upscaler_tile_too_small", "load_model", "InvalidParameterError", "tile_size",
             lambda e: q().load_model(up_path(e), model_type="upscale",
                                      model_config={"upscaler": {"tile_size": 8}})),
        # diffusion
        Case("diffusion_width_not_multiple", "diffusion", "InvalidParameterError", "width",
             lambda e: diff(e, width=65)),
        Case("diffusion_width_huge", "diffusion", "InvalidParameterError", "width", lambda e: diff(e, width=100_000)),
        Case("diffusion_width_model_cannot_make", "diffusion", "InvalidParameterError", "width",
             lambda e: diff(e, width=72)),
        Case("diffusion_size_beyond_any_memory", "diffusion", "InvalidParameterError", "width",
             lambda e: diff(e, width=4096, height=4096), guard=True),
        Case("diffusion_size_beyond_free_memory", "diffusion", "InvalidParameterError", "width",
             lambda e: _with_free_memory(64 * 2**20, lambda: diff(e, width=512, height=512)), guard=True),
        Case("diffusion_flux2_reference_beyond_free_memory", "diffusion", "InvalidParameterError", "init_image",
             lambda e: _with_free_memory(300 * 2**20, lambda: fdiff(e, init_image=np.zeros((1024, 1024, 3), np.uint8))),
             guard=True),
        Case("diffusion_height_str", "diffusion", "InvalidTypeError", "height", lambda e: diff(e, height="64")),
        Case("diffusion_steps_zero", "diffusion", "InvalidParameterError", "steps", lambda e: diff(e, steps=0)),
        Case("diffusion_gits_one_step", "diffusion", "InvalidParameterError", "steps",
             lambda e: diff(e, scheduler="gits", steps=1), guard=True),
        Case("diffusion_ays_on_flux2", "diffusion", "UnsupportedOperationError", "scheduler",
             lambda e: fdiff(e, scheduler="ays"), guard=True),
        Case("diffusion_clip_skip_all_layers", "diffusion", "InvalidParameterError", "clip_skip",
             lambda e: diff(e, clip_skip=12), guard=True),
        Case("diffusion_sampler_typo", "diffusion", "InvalidParameterError", "sampling_method",
             lambda e: diff(e, sampling_method="eulr")),
        Case("diffusion_cfg_nan", "diffusion", "InvalidParameterError", "cfg_scale",
             lambda e: diff(e, cfg_scale=float("nan"))),
        Case("diffusion_seed_negative", "diffusion", "InvalidParameterError", "seed", lambda e: diff(e, seed=-2)),
        Case("diffusion_batch_zero", "diffusion", "InvalidParameterError", "batch_count",
             lambda e: diff(e, batch_count=0)),
        Case("diffusion_prompt_none", "diffusion", "InvalidTypeError", "prompt", lambda e: diff(e, prompt=None)),
        Case("diffusion_prompt_nul", "diffusion", "InvalidParameterError", "prompt", lambda e: diff(e, prompt="a\0b")),
        Case("diffusion_init_not_an_image", "diffusion", "InvalidParameterError", "init_image",
             lambda e: diff(e, init_image=b"not an image")),
        Case("diffusion_init_five_channels", "diffusion", "InvalidParameterError", "init_image",
             lambda e: diff(e, init_image=np.zeros((64, 64, 5), np.uint8))),
        Case("diffusion_flux2_reference_too_small", "diffusion", "InvalidParameterError", "init_image",
             lambda e: fdiff(e, init_image=np.zeros((8, 8, 3), np.uint8), auto_resize_ref_image=False), guard=True),
        Case("diffusion_flux2_reference_odd_latent", "diffusion", "InvalidParameterError", "init_image",
             lambda e: fdiff(e, init_image=np.zeros((16, 300, 3), np.uint8), auto_resize_ref_image=False), guard=True),
        Case("diffusion_strength_zero", "diffusion", "InvalidParameterError", "strength",
             lambda e: diff(e, init_image=np.zeros((64, 64, 3), np.uint8), strength=0.0)),
        Case("diffusion_upscale_without_upscaler", "diffusion", "UnsupportedOperationError", "upscale",
             lambda e: diff(e, upscale=True)),
        Case("diffusion_unknown_model", "diffusion", "ModelNotLoadedError", "model_id",
             lambda e: q().diffusion(model_id="nope#1", prompt="x")),
        Case("diffusion_on_upscaler", "diffusion", "UnsupportedOperationError", "model_id",
             lambda e: q().diffusion(model_id=e.up, prompt="x", **TINY)),
        Case("diffusion_param_typo", "diffusion", "UnknownParameterError", "widht", lambda e: diff(e, widht=64)),
        Case("diffusion_cache_preset_unknown", "diffusion", "InvalidParameterError", "cache_preset",
             lambda e: diff(e, cache_preset="turbo")),
        # upscale
        Case("upscale_image_none", "upscale", "InvalidTypeError", "image", lambda e: ups(e, image=None)),
        Case("upscale_image_empty", "upscale", "InvalidParameterError", "image",
             lambda e: ups(e, image=np.zeros((0, 16, 3), np.uint8))),
        Case("upscale_image_float_range", "upscale", "InvalidParameterError", "image",
             lambda e: ups(e, image=np.full((16, 16, 3), 7.0))),
        Case("upscale_repeats_four", "upscale", "InvalidParameterError", "repeats", lambda e: ups(e, image=img,
                                                                                                     repeats=4)),
        Case("upscale_output_too_large", "upscale", "UnsupportedOperationError", "repeats",
             lambda e: ups(e, image=np.zeros((2048, 8, 3), np.uint8), repeats=2)),
        Case("upscale_beyond_free_memory", "upscale", "InvalidParameterError", "image",
             lambda e: _with_free_memory(64 * 2**20, lambda: ups(e, image=np.zeros((1024, 1024, 3), np.uint8))),
             guard=True),
        Case("upscale_on_diffusion_model", "upscale", "UnsupportedOperationError", "model_id",
             lambda e: q().upscale(model_id=e.sd1, image=img)),
        Case("upscale_unknown_model", "upscale", "ModelNotLoadedError", "model_id",
             lambda e: q().upscale(model_id="esrgan#404", image=img)),
        # unload_model
        Case("unload_unknown_model", "unload_model", "ModelNotLoadedError", "model_id",
             lambda e: q().unload_model(model_id="nope#1")),
        Case("unload_model_id_none", "unload_model", "InvalidTypeError", "model_id",
             lambda e: q().unload_model(model_id=None)),
        Case("unload_clear_storage_str", "unload_model", "InvalidTypeError", "clear_storage",
             lambda e: q().unload_model(model_id=e.sd1, clear_storage="yes")),
        Case("unload_unknown_kwarg", "unload_model", "UnknownParameterError", "force",
             lambda e: q().unload_model(model_id=e.sd1, force=True)),
        # cancel
        Case("cancel_unknown_model", "cancel", "ModelNotLoadedError", "model_id", lambda e: q().cancel(model_id="x#9")),
        Case("cancel_model_id_int", "cancel", "InvalidTypeError", "model_id", lambda e: q().cancel(model_id=5)),
        Case("cancel_unknown_kwarg", "cancel", "UnknownParameterError", "force",
             lambda e: q().cancel(model_id=e.sd1, force=True)),
        # the Studio widget
        Case("studio_unknown_model", "Studio", "ModelNotLoadedError", "model_id", lambda e: _studio(e, "nope#3")),
        Case("studio_upscaler_model", "Studio", "UnsupportedOperationError", "model_id", lambda e: _studio(e, e.up)),
        Case("studio_steps_zero", "Studio", "InvalidParameterError", "steps", lambda e: _studio_generate(e, steps=0)),
        Case("studio_load_empty_source", "Studio", "InvalidParameterError", "model", lambda e: _studio(e).load("")),
        Case("studio_init_image_garbage", "Studio", "InvalidParameterError", "init_image",
             lambda e: _studio(e, e.sd1).set_init_image(b"GIF89a-broken", "broken.gif")),
    ]


def _flux2_without_both(env: Env) -> str:
    from reliability_files import read_gguf_layout, write_gguf

    layout = read_gguf_layout(env.model("flux2").files["diffusion_model"])
    gone = ("single_blocks.0.norm.key_norm.scale", "double_blocks.0.txt_attn.norm.key_norm.scale")
    layout.tensors = [t for t in layout.tensors if t.name not in gone]
    return str(write_gguf(env.tmp / "flux2-no-key-norms.gguf", layout))


CASES: dict[str, Case] = {case.name: case for case in _build_cases()}
LAST_CASE = list(CASES)[-1]


# ---------------------------------------------------------------- scenarios


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _wait_first_tick(job: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not job.progress_stream.ticks:
        if job.done() or time.monotonic() > deadline:
            return
        time.sleep(0.005)


def _pixels(png: bytes) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


def scenario_soak(env: Env) -> dict[str, Any]:
    """50 generations and 20 cancels on one model: the RSS of this process (the kernel) and of the model's engine
    worker (where a leak of the engine would show) stays flat from the first of the 50 on; each cancel stops its job
    within one step, without ending the worker, and the last of the 50, after all 20 cancels, makes the same image
    as the model's first generation for the same seed."""
    import numpy as np
    import psutil

    from qvac_nb import runner

    qvac_nb = env.qvac_nb

    def worker() -> Any:
        model_runner = runner.runner_for(env.sd1)
        assert model_runner is not None and model_runner.worker is not None, "the SD1 model has no worker"
        return psutil.Process(model_runner.worker.proc.pid)

    (first,) = env.generate(seed=1)
    engine = worker()
    rss0 = worker0 = peak = 0.0
    generations = cancels = 0
    overrun = 0  # the most steps a job made after the one its cancel came at
    for i in range(50):
        if i % 5 == 4 or i % 5 == 2:  # 20 cancels spread over the run, the last one before the last generation
            job = qvac_nb.diffusion(model_id=env.sd1, prompt="cancel me", **{**TINY, "steps": 6, "cfg_scale": 1.0})
            _wait_first_tick(job)
            at = max((t.step for t in job.progress_stream.ticks), default=0)
            job.cancel()
            try:
                job.outputs.result(timeout=300)
            except qvac_nb.CancelledError:
                cancels += 1
            overrun = max(overrun, max((t.step for t in job.progress_stream.ticks), default=0) - at)
        (again,) = env.generate(seed=1 if i == 49 else 100 + i)  # the last one: the first generation's seed
        generations += 1
        if i == 0:  # the baseline after two generations, the first-use allocations made
            rss0, worker0 = _rss_mb(), engine.memory_info().rss / 2**20
        peak = max(peak, _rss_mb())
    gc.collect()
    rss1, worker1 = _rss_mb(), engine.memory_info().rss / 2**20
    same_worker = worker().pid == engine.pid
    same_image = bool(np.array_equal(_pixels(first), _pixels(again)))
    return {"ok": generations == 50 and cancels == 20 and rss1 - rss0 < 64 and worker1 - worker0 < 64
            and overrun <= 1 and same_worker and same_image,
            "generations": generations, "cancels": cancels, "rss_start_mb": round(rss0, 1),
            "rss_end_mb": round(rss1, 1), "rss_peak_mb": round(peak, 1), "growth_mb": round(rss1 - rss0, 1),
            "worker_rss_start_mb": round(worker0, 1), "worker_rss_end_mb": round(worker1, 1),
            "worker_growth_mb": round(worker1 - worker0, 1), "limit_mb": 64,
            "steps_after_cancel_max": overrun, "same_worker": same_worker, "same_image_for_seed_1": same_image}


def scenario_unload_frees(env: Env) -> dict[str, Any]:
    """unload_model gives the model's memory back: its worker held the model and is gone; the caller never held it."""
    import psutil

    qvac_nb = env.qvac_nb
    test_model = env.model("sd1")
    size_mb = sum(p.stat().st_size for p in test_model.files.values()) / 2**20
    gc.collect()
    me = psutil.Process()
    before = _rss_mb()
    workers_before = {c.pid for c in me.children()}
    model_id = qvac_nb.load_model(str(test_model.primary), model_config={"threads": THREADS})
    env.generate(model_id)
    loaded = _rss_mb()
    new_workers = [c for c in me.children() if c.pid not in workers_before]
    worker_mb = sum(c.memory_info().rss for c in new_workers) / 2**20
    qvac_nb.unload_model(model_id=model_id)
    gc.collect()
    after = _rss_mb()
    gone = not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in new_workers)
    return {"ok": worker_mb >= 0.8 * size_mb and gone and after - before < 50, "model_mb": round(size_mb, 1),
            "worker_rss_mb": round(worker_mb, 1), "worker_gone": gone, "rss_before_load_mb": round(before, 1),
            "rss_loaded_mb": round(loaded, 1), "rss_after_unload_mb": round(after, 1)}


def scenario_load_unload_cycles(env: Env) -> dict[str, Any]:
    """load -> generate -> unload ten times: RSS after the last cycle is where the second left it."""
    qvac_nb = env.qvac_nb
    test_model = env.model("sd1")
    samples = []
    for _ in range(10):
        model_id = qvac_nb.load_model(str(test_model.primary), model_config={"threads": THREADS})
        env.generate(model_id)
        qvac_nb.unload_model(model_id=model_id)
        gc.collect()
        samples.append(round(_rss_mb(), 1))
    growth = samples[-1] - samples[1]
    return {"ok": growth < 64, "rss_after_each_mb": samples, "growth_mb": round(growth, 1), "limit_mb": 64}


def scenario_interrupt_main(env: Env) -> dict[str, Any]:
    """SIGINT while the main thread waits on result(): KeyboardInterrupt, the job is cancelled, the model works."""
    qvac_nb = env.qvac_nb
    env.generate()
    job = qvac_nb.diffusion(model_id=env.sd1, prompt="interrupt me", **{**TINY, "steps": 40})

    def interrupt() -> None:
        _wait_first_tick(job)
        # A real SIGINT, as Jupyter's interrupt sends: it wakes the main thread's wait
        # (interrupt_main() would only be noticed once that wait had ended by itself).
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    interrupted = False
    try:
        job.outputs.result(timeout=600)
    except KeyboardInterrupt:
        interrupted = True
    try:
        job.outputs.result(timeout=300)
        outcome = "finished"
    except qvac_nb.CancelledError:
        outcome = "cancelled"
    steps = max((t.step for t in job.progress_stream.ticks), default=0)
    usable = env.alive()
    return {"ok": interrupted and outcome == "cancelled" and usable and steps < 40, "interrupted": interrupted,
            "outcome": outcome, "steps_run": steps, "model_usable": usable}


def scenario_two_threads(env: Env) -> dict[str, Any]:
    """Two threads calling diffusion on one model: both succeed, in submission order."""
    qvac_nb = env.qvac_nb
    done: list[tuple[str, float]] = []
    errors: list[str] = []
    submitted = threading.Barrier(2)
    order: list[str] = []
    lock = threading.Lock()

    def worker(tag: str, delay: float) -> None:
        try:
            submitted.wait()
            time.sleep(delay)
            with lock:
                job = qvac_nb.diffusion(model_id=env.sd1, prompt=f"thread {tag}", **{**TINY, "steps": 3})
                order.append(tag)
            job.outputs.result(timeout=600)
            done.append((tag, time.perf_counter()))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{tag}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=("A", 0.0)), threading.Thread(target=worker, args=("B", 0.05))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    finished = [tag for tag, _ in sorted(done, key=lambda d: d[1])]
    return {"ok": not errors and len(done) == 2 and finished == order, "submitted": order, "finished": finished,
            "errors": errors}


def scenario_unload_during_generation(env: Env) -> dict[str, Any]:
    """unload_model while a job runs: the job ends cancelled, unload returns, other models still work."""
    qvac_nb = env.qvac_nb
    test_model = env.model("sd1")
    model_id = qvac_nb.load_model(str(test_model.primary), model_config={"threads": THREADS})
    job = qvac_nb.diffusion(model_id=model_id, prompt="unload me", **{**TINY, "steps": 40})
    queued = qvac_nb.diffusion(model_id=model_id, prompt="never runs", **TINY)
    _wait_first_tick(job)
    t0 = time.perf_counter()
    qvac_nb.unload_model(model_id=model_id)
    unload_s = time.perf_counter() - t0
    outcomes = []
    for j in (job, queued):
        try:
            j.outputs.result(timeout=300)
            outcomes.append("finished")
        except qvac_nb.CancelledError:
            outcomes.append("cancelled")
    gone = model_id not in qvac_nb.loaded_models()
    usable = env.alive()
    return {"ok": outcomes == ["cancelled", "cancelled"] and gone and usable, "outcomes": outcomes,
            "unload_seconds": round(unload_s, 2), "unloaded": gone, "other_model_usable": usable}


def scenario_cancel_queued_and_running(env: Env) -> dict[str, Any]:
    """cancel() stops the running and the queued jobs of a model; the next job runs normally."""
    qvac_nb = env.qvac_nb
    jobs = [qvac_nb.diffusion(model_id=env.sd1, prompt="c", **{**TINY, "steps": 30}) for _ in range(3)]
    _wait_first_tick(jobs[0])
    count = qvac_nb.cancel(model_id=env.sd1)
    outcomes = []
    for job in jobs:
        try:
            job.outputs.result(timeout=300)
            outcomes.append("finished")
        except qvac_nb.CancelledError:
            outcomes.append("cancelled")
    usable = env.alive()
    return {"ok": count == 3 and outcomes == ["cancelled"] * 3 and usable, "cancelled_count": count,
            "outcomes": outcomes, "model_usable": usable}


SCENARIOS: dict[str, Callable[[Env], dict[str, Any]]] = {
    "soak_50_generations_20_cancels": scenario_soak,
    "unload_returns_memory": scenario_unload_frees,
    "load_unload_10_cycles": scenario_load_unload_cycles,
    "keyboard_interrupt_cancels": scenario_interrupt_main,
    "two_threads_in_order": scenario_two_threads,
    "unload_during_generation": scenario_unload_during_generation,
    "cancel_queued_and_running": scenario_cancel_queued_and_running,
}


# ---------------------------------------------------------------- SIGINT (driven by the parent)


def sigint_child() -> None:
    """Wait on a long job; the parent sends SIGINT once this prints WAITING."""
    env = Env()
    qvac_nb = env.qvac_nb
    env.generate()
    job = qvac_nb.diffusion(model_id=env.sd1, prompt="ctrl-c me", **{**TINY, "steps": 60})
    _wait_first_tick(job)
    print("WAITING", flush=True)
    result: dict[str, Any] = {}
    try:
        job.outputs.result(timeout=600)
        result["interrupted"] = False
    except KeyboardInterrupt:
        result["interrupted"] = True
    try:
        job.outputs.result(timeout=300)
        result["outcome"] = "finished"
    except qvac_nb.CancelledError:
        result["outcome"] = "cancelled"
    result["steps_run"] = max((t.step for t in job.progress_stream.ticks), default=0)
    result["model_usable"] = env.alive()
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sigint-child"]:
        sigint_child()
    else:
        main(sys.argv[1], sys.argv[2])
