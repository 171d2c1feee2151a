"""Opening a model in a worker: the engine context and/or ESRGAN upscaler a LOAD request names.

Kept apart from the generation calls (engine_calls), which need numpy and PIL: a worker starts the
engine load as soon as the request arrives, while those imports finish on another thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import _engine, engine
from . import split_unet

# The engine's roles of the files that load beside the model (ContextConfig attributes of the same names).
_COMPANION_ROLES = ("llm", "vae", "clip_l", "clip_g", "t5xxl", "taesd", "control_net", "clip_vision", "llm_vision",
                    "high_noise_diffusion_model", "photo_maker")


class OpenModel:
    """A loaded engine context and/or ESRGAN upscaler, as one worker holds it."""

    def __init__(self, family: str, context: Any = None, upscaler: Any = None) -> None:
        self.family = family
        self.context = context
        self.upscaler = upscaler
        self.upscaler_path: str | None = None  # the hires fix's 'model' upscaler reads the same file

    @property
    def upscale_factor(self) -> int:
        return int(self.upscaler.factor) if self.upscaler is not None else 0

    def close(self) -> None:
        for handle in (self.context, self.upscaler):
            if handle is not None:
                handle.close()
        self.context = self.upscaler = None


def threads(config: dict[str, Any]) -> int:
    return engine.resolve_threads(config.get("threads", -1))


LOAD_TICK_INTERVAL_S = 0.05  # how often a load's progress is relayed to the kernel


class _LoadTicks:
    """Relays a load's progress to `on_tick` from a thread of its own, every LOAD_TICK_INTERVAL_S.

    The engine only stores its load progress in the job (quiet_load): a callback into Python would make the
    engine's loader wait for the GIL, which the warm-up thread's imports hold for tens of milliseconds at a
    time, and the loader looks at its reading threads only every 200 ms, so each wait can cost a whole step.
    """

    def __init__(self, job: Any, on_tick: Callable[[str, int, int, float], None], role: str) -> None:
        self.job, self.on_tick, self.role = job, on_tick, role
        job.quiet_load = True
        self._last: tuple[int, int] | None = None
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"qvac_nb-load-ticks-{role}", daemon=True)

    def __enter__(self) -> _LoadTicks:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._relay()  # the last report (step == total) once the load has returned

    def _run(self) -> None:
        while not self._stop.wait(LOAD_TICK_INTERVAL_S):
            self._relay()

    def _relay(self) -> None:
        got = self.job.load_progress
        if got is None or got == self._last:
            return
        self._last = got
        try:
            self.on_tick(self.role, got[0], got[1], (time.perf_counter() - self._start) * 1000)
        except (OSError, ValueError):  # the kernel is gone; the worker ends with its connection
            pass


def _load_job(on_tick: Callable[[str, int, int, float], None] | None, role: str) -> tuple[Any, Any]:
    """The engine job of a load and the context manager to run the load in (relaying its ticks, if wanted)."""
    job = _engine.Job()
    return job, (_LoadTicks(job, on_tick, role) if on_tick is not None else contextlib.nullcontext())


def _context_config(files: dict[str, str], role: str, spec: dict[str, Any]) -> Any:
    cc = _engine.ContextConfig()
    setattr(cc, role, files[role])
    for key in _COMPANION_ROLES:
        if key in files:
            setattr(cc, key, files[key])
    for attr, value in spec["context"].items():
        setattr(cc, attr, value)
    cc.embeddings = [tuple(pair) for pair in spec.get("embeddings", ())]  # (name, path); lists after pickling
    cc.threads = threads(spec["config"])  # always set: the engine's own default differs from ours
    return cc


def _open_upscaler(path: str, config: dict[str, Any], on_tick: Callable[..., None] | None) -> Any:
    up = config.get("upscaler") or {}
    own_threads = up.get("threads", -1)
    job, ticks = _load_job(on_tick, "upscaler")
    with ticks:
        return _engine.Upscaler(
            path,
            int(own_threads) if own_threads != -1 else threads(config),  # -1: the model's own threads
            up.get("tile_size", 128),
            bool(up.get("offload_params_to_cpu") or config.get("offload_to_cpu", False)),
            bool(up.get("direct", False)),
            job,
        )


# device='cpu': what hides each GPU backend from ggml. The engine always picks a GPU as its main
# device when one is visible (it has no backend choice), so the worker, which holds this one model,
# hides them before the engine first lists its devices. Metal has no such switch.
HIDE_GPUS_ENV = {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": "", "GGML_VK_VISIBLE_DEVICES": ""}


def keep_on_cpu(config: dict[str, Any]) -> dict[str, str]:
    """Hide the GPUs from this worker's engine when the model is loaded with device='cpu'; returns what was set."""
    if config.get("device") != "cpu":
        return {}
    os.environ.update(HIDE_GPUS_ENV)
    return dict(HIDE_GPUS_ENV)


def open_model(spec: dict[str, Any], on_tick: Callable[[str, int, int, float], None] | None) -> OpenModel:
    """Load what `spec` names: {"mode", "family", "role", "files": {role: path}, "config", "context"}.

    "context" holds the engine's context fields as the kernel mapped them (LoadedModel.worker_spec).
    """
    files, config = spec["files"], spec["config"]
    keep_on_cpu(config)
    if spec["mode"] == "upscale":
        return OpenModel("esrgan", upscaler=_open_upscaler(files["upscaler"], config, on_tick))
    cc = _context_config(files, spec["role"], spec)
    if split_unet.needs_marker(spec["family"], spec["role"], files):
        cc.model = str(split_unet.marker_file())  # lets the engine see an SDXL U-Net-only file as SDXL
    job, ticks = _load_job(on_tick, "model")
    with ticks:
        context = _engine.Context(cc, job)
    model = OpenModel(spec["family"], context=context)
    model.upscaler_path = files.get("upscaler")
    if "upscaler" in files:
        try:
            model.upscaler = _open_upscaler(files["upscaler"], config, on_tick)
        except BaseException:
            context.close()  # don't keep the diffusion model loaded but unreachable
            raise
    return model


def loaded_facts(model: OpenModel, load_ms: float) -> dict[str, Any]:
    sampler = model.context.default_sample_method() if model.context is not None else None
    return {
        "default_sampler": sampler,
        "default_scheduler": model.context.default_scheduler(sampler) if model.context is not None else None,
        "upscale_factor": model.upscale_factor,
        "load_ms": load_ms,
    }
