"""load_model / unload_model and the table of loaded models."""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import engine, guards, runner
from .errors import (
    CancelledError,
    EngineError,
    InvalidParameterError,
    InvalidTypeError,
    ModelFileError,
    ModelNotLoadedError,
    UnsupportedOperationError,
    suggest,
)
from .model_files import FileInfo, check_companion, inspect_file
from .validation import (
    PREDICTIONS,
    check_bool,
    check_choice,
    check_int,
    check_path,
    check_unknown,
)
from .worker import protocol
from .worker.process import WorkerDied, WorkerProcess

COMPANION_KEYS = {
    "llm_model_src": "llm",
    "vae_model_src": "vae",
    "clip_l_model_src": "clip_l",
    "clip_g_model_src": "clip_g",
    "t5_xxl_model_src": "t5xxl",
    "taesd_model_src": "taesd",
}
CONFIG_KEYS = (
    "device",
    "threads",
    "prediction",
    *COMPANION_KEYS,
    "upscaler",
    "mode",
    "type",
    "rng",
    "sampler_rng",
    "clip_on_cpu",
    "vae_on_cpu",
    "offload_to_cpu",
    "flash_attn",
    "diffusion_fa",
    "lora_apply_mode",
    "mmap",
    "diffusion_conv_direct",
    "vae_conv_direct",
)
MODEL_TYPES = ("diffusion", "upscale")
# Which family a model belongs to decides guidance vs cfg and the cache mode.
DIT_FAMILIES = ("flux", "flux2", "sd3")
GUIDANCE_FAMILIES = ("flux", "flux2")


@dataclass
class LoadedModel:
    """The kernel's handle on a loaded model; the model itself lives in a worker process."""

    model_id: str
    mode: str  # diffusion | upscale
    family: str
    source: str
    files: dict[str, Path]
    config: dict[str, Any]
    load_ms: float
    role: str = "model"  # the engine's name for the primary file: model | diffusion_model | upscaler
    upscale_factor: int = 0
    default_sampler: str | None = None
    default_scheduler: str | None = None

    @property
    def prediction(self) -> str:
        return str(self.config.get("prediction", "auto"))

    @property
    def uses_guidance(self) -> bool:
        return self.family in GUIDANCE_FAMILIES

    @property
    def has_upscaler(self) -> bool:
        return "upscaler" in self.files

    def worker_spec(self) -> dict[str, Any]:
        """What a worker needs to load this model (plain data: it crosses to another process)."""
        return {"mode": self.mode, "family": self.family, "role": self.role,
                "files": {role: str(path) for role, path in self.files.items()}, "config": dict(self.config)}


_models: dict[str, LoadedModel] = {}
_models_lock = threading.Lock()
_ids = itertools.count(1)
_gpu_warned = False


def _camel_to_snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def normalize_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated model_config with camelCase aliases folded into snake_case keys."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise InvalidTypeError(f"model_config: expected a dict, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for raw_key, value in config.items():
        if not isinstance(raw_key, str):
            raise InvalidTypeError(f"model_config: keys must be strings, got {raw_key!r}")
        key = _camel_to_snake(raw_key)
        check_unknown("model_config", [key], CONFIG_KEYS)
        out[key] = value
    names = engine.enum_names()
    checked: dict[str, Any] = {}
    for key, value in out.items():
        if key == "device":
            checked[key] = check_choice("model_config.device", value, ("gpu", "cpu"))
        elif key == "threads":
            checked[key] = check_int("model_config.threads", value, 1, 256, extra=(-1,))
        elif key == "prediction":
            checked[key] = check_choice("model_config.prediction", value, PREDICTIONS)
        elif key in COMPANION_KEYS:
            checked[key] = check_path(f"model_config.{key}", value, allow_none=True)
        elif key == "upscaler":
            checked[key] = _check_upscaler(value)
        elif key == "mode":
            checked[key] = check_choice("model_config.mode", value, MODEL_TYPES)
        elif key == "type":
            allowed = [t for t in names["type"] if t.isidentifier() and t != "DEPRECATED"]
            checked[key] = check_choice("model_config.type", value, allowed)
        elif key in ("rng", "sampler_rng"):
            checked[key] = check_choice(f"model_config.{key}", value, names["rng"])
        elif key == "lora_apply_mode":
            checked[key] = check_choice("model_config.lora_apply_mode", value, names["lora_apply_mode"])
        else:
            checked[key] = check_bool(f"model_config.{key}", value)
    return checked


def _check_upscaler(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"model_src": value}
    if not isinstance(value, Mapping):
        raise InvalidTypeError(f"model_config.upscaler: expected a dict like {{'model_src': ...}}, got {value!r}")
    keys = {_camel_to_snake(k): v for k, v in value.items()}
    check_unknown("model_config.upscaler", keys, ("type", "model_src", "tile_size"))
    out = {
        "type": check_choice("model_config.upscaler.type", keys.get("type", "esrgan"), ("esrgan",)),
        "tile_size": check_int("model_config.upscaler.tile_size", keys.get("tile_size", 128), 16, 2048),
    }
    if "model_src" in keys:
        out["model_src"] = check_path("model_config.upscaler.model_src", keys["model_src"])
    return out


def _warn_cpu_fallback(config: dict[str, Any]) -> None:
    global _gpu_warned
    if config.get("device") == "gpu" and not _gpu_warned and not engine.facts().get("gpu_backend"):
        _gpu_warned = True
        warnings.warn(
            "device='gpu': this engine build has no GPU backend, so qvac_nb runs on the CPU. "
            "Install a CUDA/Metal/Vulkan build of stable-diffusion-cpp-python or set QVAC_NB_SD_LIBRARY.",
            RuntimeWarning,
            stacklevel=3,
        )


def _resolve(src: str, role: str, on_progress: Callable[[dict], None] | None) -> tuple[Path, dict[str, Any]]:
    """A local file for `src`, downloading it first if needed, plus catalogue defaults."""
    from . import catalog

    if Path(src).expanduser().is_file():
        return Path(src).expanduser(), {}
    from . import download

    defaults: dict[str, Any] = {}
    if src in catalog.CATALOG:
        entry = catalog.CATALOG[src]
        defaults = {**entry.default_config, **entry.companions}

    def progress(info: dict) -> None:
        if on_progress is not None:
            on_progress({"phase": "download", "role": role, **info})

    try:
        return download.resolve_source(src, on_progress=progress if on_progress else None), defaults
    except ModelFileError as exc:  # name the parameter, as every other load_model error does
        raise ModelFileError(f"{role}: {exc}") from None


def load_model(
    model_src: str | bytes | os.PathLike[str],
    *,
    model_type: str = "diffusion",
    model_config: Mapping[str, Any] | None = None,
    on_progress: Callable[[dict], None] | None = None,
    **unexpected: Any,
) -> str:
    """Load a model (downloading it and its companions if needed) and return its id.

    The model lives in a worker process of its own: whatever the engine does there (a crash,
    an abort, running out of memory) cannot take the notebook's kernel with it.
    """
    check_unknown("load_model", unexpected, ("model_src", "model_type", "model_config", "on_progress"))
    model_src = check_path("model_src", model_src)  # bytes and non-UTF-8 names come back as str
    if not model_src:
        raise InvalidParameterError("model_src: must name a catalogue constant, a path, an https URL or hf://...")
    check_choice("model_type", model_type, MODEL_TYPES)
    if on_progress is not None and not callable(on_progress):
        raise InvalidTypeError("on_progress: expected a callable taking one dict")
    # The worker starts (imports, opens the engine) while the files are checked and fetched here.
    worker = WorkerProcess("a new model")
    try:
        if not engine.facts():
            engine.remember_facts(worker.wait_ready())
        model = _prepare(model_src, model_type, model_config, on_progress)
        worker.label = f"model '{model.model_id}'"
        worker.wait_ready()
        _load_in(worker, model, on_progress)
    except BaseException:
        worker.kill()
        raise
    with _models_lock:
        _models[model.model_id] = model
    runner.register(model, worker)
    return model.model_id


def _prepare(model_src: str, model_type: str, model_config: Mapping[str, Any] | None,
             on_progress: Callable[[dict], None] | None) -> LoadedModel:
    """Validate the config, fetch and check every file: the handle of a model not loaded yet."""
    config = normalize_config(model_config)
    guards.check_load_config(config)
    mode = config.get("mode", model_type)
    _warn_cpu_fallback(config)

    primary, defaults = _resolve(model_src, "model_src", on_progress)
    for key, value in defaults.items():
        config.setdefault(key, value)
    info = inspect_file(primary, "model_src")
    files: dict[str, Path] = {}
    # The id is typed back by users: show bytes that are not UTF-8 as \xNN rather than as surrogates.
    shown = Path(model_src).name.split("@")[0].encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    model_id = f"{shown}#{next(_ids)}"

    if mode == "upscale":
        if info.family not in ("esrgan", "unknown"):
            raise UnsupportedOperationError(
                f"model_src: {primary.name} is a {info.family} model, not an ESRGAN upscaler; "
                "load it with mode='diffusion'"
            )
        files["upscaler"] = primary
        return LoadedModel(model_id, "upscale", "esrgan", model_src, files, config, 0.0, role="upscaler")
    if info.family in ("esrgan", "llm", "vae", "text_encoder"):
        raise UnsupportedOperationError(
            f"model_src: {primary.name} is a {info.family} file, not a diffusion model"
            + ("; load it with mode='upscale'" if info.family == "esrgan" else "")
        )
    role = "diffusion_model" if _is_split(info, config) else "model"
    files[role] = primary
    companions: dict[str, FileInfo] = {}
    for key, file_role in COMPANION_KEYS.items():
        if config.get(key):
            files[file_role], _ = _resolve(str(config[key]), f"model_config.{key}", on_progress)
            companions[key] = inspect_file(files[file_role], f"model_config.{key}")
    _check_companions(info, files)
    for key, companion in companions.items():  # each one fits the family (a FLUX.2 VAE for FLUX.2, ...)
        check_companion(info, key, companion)
    up_cfg = config.get("upscaler")
    if up_cfg and up_cfg.get("model_src"):
        # Resolved and checked before the diffusion model: a bad upscaler fails in seconds, not after a load.
        up_path, _ = _resolve(up_cfg["model_src"], "model_config.upscaler.model_src", on_progress)
        up_info = inspect_file(up_path, "model_config.upscaler.model_src")
        if up_info.family not in ("esrgan", "unknown"):
            raise UnsupportedOperationError(f"model_config.upscaler.model_src: {up_path.name} is not an ESRGAN model")
        files["upscaler"] = up_path
    return LoadedModel(model_id, "diffusion", info.family, model_src, files, config, 0.0, role=role)


def _load_in(worker: WorkerProcess, model: LoadedModel, on_progress: Callable[[dict], None] | None) -> None:
    """Have `worker` load `model`, relaying its load ticks; fills in what the engine reports."""
    worker.send(protocol.LOAD, None, model.worker_spec())
    while True:
        try:
            msg = worker.recv(1.0)
        except WorkerDied:
            raise worker.crash_error("loading the model", reload_note=False) from None
        if msg is None:
            continue
        if msg[0] == protocol.LOAD_TICK and on_progress is not None:
            _, role, step, total, elapsed = msg
            on_progress({"phase": "load", "role": role, "percentage": 100.0 * step / total if total else 0.0,
                         "step": step, "total_steps": total, "elapsed_ms": elapsed})
        elif msg[0] == protocol.ERROR:
            error = protocol.decode_error(msg[2])
            what = "model_config.upscaler.model_src" if model.has_upscaler and "upscal" in str(error).lower() \
                else "model_src"
            if isinstance(error, CancelledError):
                raise CancelledError(f"loading {what} was cancelled")
            raise type(error)(f"{what}: {error}") if type(error) is EngineError else error
        elif msg[0] == protocol.LOADED:
            loaded = msg[1]
            model.default_sampler = loaded["default_sampler"]
            model.default_scheduler = loaded["default_scheduler"]
            model.upscale_factor = loaded["upscale_factor"]
            model.load_ms = loaded["load_ms"]
            return


def start_worker(model: LoadedModel, on_progress: Callable[[dict], None] | None = None) -> WorkerProcess:
    """A new worker with `model` loaded again (after a crash, or a cancel that had to end the last one)."""
    worker = WorkerProcess(f"model '{model.model_id}'")
    try:
        worker.wait_ready()
        _load_in(worker, model, on_progress)
    except BaseException:
        worker.kill()
        raise
    return worker


def _is_split(info: FileInfo, config: dict[str, Any]) -> bool:
    """A diffusion-only file (split layout) rather than an all-in-one checkpoint."""
    if info.family in ("flux", "flux2") or config.get("llm_model_src"):
        return True
    return not any(name.startswith(("model.diffusion_model.", "first_stage_model.")) for name in info.tensors)


def _check_companions(info: FileInfo, files: dict[str, Path]) -> None:
    """The engine aborts on a split model without the text encoder or VAE it needs."""
    family = info.family
    if family == "flux2":
        for role, key in (("llm", "llm_model_src"), ("vae", "vae_model_src")):
            if role not in files:
                raise InvalidParameterError(f"model_config.{key}: a FLUX.2 diffusion model needs its {role} file")
    if family == "sd3" and not any(r in files for r in ("clip_l", "clip_g", "t5xxl")) and "model" not in files:
        raise InvalidParameterError("model_config.clip_l_model_src: an SD3 diffusion model needs its text encoders")


def get_model(model_id: Any) -> LoadedModel:
    if not isinstance(model_id, str):
        raise InvalidTypeError(f"model_id: expected the string load_model returned, got {type(model_id).__name__}")
    with _models_lock:
        model = _models.get(model_id)
        loaded = list(_models)
    if model is None:
        hint = suggest(model_id, loaded) or (f"; loaded: {', '.join(loaded)}" if loaded else "; no model is loaded")
        raise ModelNotLoadedError(f"model_id: '{model_id}' is not a loaded model{hint}")
    return model


def loaded_models() -> list[str]:
    with _models_lock:
        return list(_models)


def unload_model(*, model_id: str, clear_storage: bool = False, **unexpected: Any) -> None:
    """Free a model: its worker process ends (all of its memory returns at once) and its jobs are cancelled.

    Returns within about two seconds whatever the model is doing; safe to call from a progress
    listener. `clear_storage=True` also deletes the model's cached download.
    """
    check_unknown("unload_model", unexpected, ("model_id", "clear_storage"))
    check_bool("clear_storage", clear_storage)
    model = get_model(model_id)
    with _models_lock:
        _models.pop(model_id, None)
    model_runner = runner.unregister(model_id)
    if model_runner is not None:
        model_runner.close()
    if clear_storage:
        from . import download

        download.delete_cached(model.source)


@atexit.register
def _free_all() -> None:
    """End every worker at interpreter exit, so nothing outlives the kernel (and exit stays fast)."""
    with _models_lock:
        _models.clear()
    runner.close_all()


def require(model: LoadedModel, mode: str, operation: str) -> None:
    if model.mode != mode:
        other = "upscale" if mode == "diffusion" else "diffusion"
        raise UnsupportedOperationError(
            f"model_id: '{model.model_id}' was loaded with mode='{model.mode}', so it cannot run {operation}; "
            f"use {'diffusion' if model.mode == 'diffusion' else 'upscale'}() or load with mode='{other}'"
        )


__all__ = ["load_model", "unload_model", "get_model", "loaded_models", "LoadedModel", "CancelledError", "EngineError"]
