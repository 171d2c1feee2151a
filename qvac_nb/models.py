"""load_model / unload_model and the table of loaded models."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import itertools
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _engine, engine, families, guards, runner, schema
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
from .validation import check_bool, check_choice, check_str, check_unknown

# model_config key -> the file role (and ContextConfig attribute) of each companion file.
COMPANION_KEYS = schema.COMPANION_ROLES
CONFIG_KEYS = schema.CONFIG_KEYS
MODEL_TYPES = schema.MODEL_TYPES
_GPU_SYMBOLS = ("ggml_backend_cuda_init", "ggml_backend_metal_init", "ggml_backend_vk_init", "ggml_backend_sycl_init")


@dataclass
class LoadedModel:
    model_id: str
    mode: str  # diffusion | upscale
    family: str
    source: str
    files: dict[str, Path]
    config: dict[str, Any]
    load_ms: float
    context: Any = None  # _engine.Context
    upscaler: Any = None  # _engine.Upscaler (paired or standalone)
    upscale_factor: int = 0
    default_sampler: str | None = None
    default_scheduler: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def prediction(self) -> str:
        return str(self.config.get("prediction", "auto"))

    @property
    def uses_guidance(self) -> bool:
        return families.get(self.family).uses_guidance

    def close(self) -> None:
        for handle in (self.context, self.upscaler):
            if handle is not None:
                handle.close()
        self.context = self.upscaler = None


_models: dict[str, LoadedModel] = {}
_models_lock = threading.Lock()
_ids = itertools.count(1)
_gpu_warned = False


def normalize_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated model_config with camelCase aliases folded into snake_case keys (only the keys given)."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise InvalidTypeError(f"model_config: expected a dict, got {type(config).__name__}")
    return schema.validate(schema.MODEL_CONFIG, config, where="model_config", prefix="model_config.",
                           names=engine.enum_names(), fill=False)


def _check_upscaler(value: Any) -> dict[str, Any] | None:
    return schema.check_upscaler(value)


def _has_gpu_backend() -> bool:
    try:
        lib = ctypes.CDLL(str(engine.find_library()))
    except OSError:
        return False
    return any(hasattr(lib, sym) for sym in _GPU_SYMBOLS)


def _warn_cpu_fallback(config: dict[str, Any]) -> None:
    global _gpu_warned
    if config.get("device") == "gpu" and not _gpu_warned and not _has_gpu_backend():
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


def _physical_cores() -> int:
    return int(engine.info()["physical_cores"])


def _engine_config(files: dict[str, Path], role: str, config: dict[str, Any]) -> Any:
    cc = _engine.ContextConfig()
    setattr(cc, role, str(files[role]))
    for key in COMPANION_KEYS.values():
        if key in files:
            setattr(cc, key, str(files[key]))
    # threads is always set: -1 (the default) means every physical core.
    fields = schema.engine_fields({"threads": -1, **config}, schema.MODEL_CONFIG, engine.enum_names())
    return schema.fill_engine_object(cc, fields)


def _load_progress_job(on_progress: Callable[[dict], None] | None, role: str) -> Any:
    job = _engine.Job()
    if on_progress is not None:
        start = time.perf_counter()

        def tick(step: int, total: int, _secs: float, _phase: str) -> None:
            pct = 100.0 * step / total if total else 0.0
            on_progress(
                {
                    "phase": "load",
                    "role": role,
                    "percentage": pct,
                    "step": step,
                    "total_steps": total,
                    "elapsed_ms": (time.perf_counter() - start) * 1000,
                }
            )

        job.on_progress = tick
    return job


@contextlib.contextmanager
def _engine_errors(what: str) -> Iterator[None]:
    """Engine failures while loading surface as QvacErrors, like every other load_model error."""
    try:
        yield
    except _engine.Cancelled:
        raise CancelledError(f"loading {what} was cancelled") from None
    except _engine.EngineError as exc:
        raise EngineError(f"{what}: {exc}") from None


def load_model(
    model_src: str,
    *,
    model_type: str = "diffusion",
    model_config: Mapping[str, Any] | None = None,
    on_progress: Callable[[dict], None] | None = None,
    **unexpected: Any,
) -> str:
    """Load a model (downloading it and its companions if needed) and return its id."""
    check_unknown("load_model", unexpected, ("model_src", "model_type", "model_config", "on_progress"))
    check_str("model_src", model_src)
    if not model_src:
        raise InvalidParameterError("model_src: must name a catalogue constant, a path, an https URL or hf://...")
    check_choice("model_type", model_type, MODEL_TYPES)
    if on_progress is not None and not callable(on_progress):
        raise InvalidTypeError("on_progress: expected a callable taking one dict")
    engine.ensure_loaded()
    config = normalize_config(model_config)
    guards.check_load_config(config)
    mode = config.get("mode", model_type)
    _warn_cpu_fallback(config)

    primary, defaults = _resolve(model_src, "model_src", on_progress)
    for key, value in defaults.items():
        config.setdefault(key, value)
    info = inspect_file(primary, "model_src")
    files: dict[str, Path] = {}
    start = time.perf_counter()
    model_id = f"{Path(model_src).name.split('@')[0]}#{next(_ids)}"

    if mode == "upscale":
        if info.family not in ("esrgan", "unknown"):
            raise UnsupportedOperationError(
                f"model_src: {primary.name} is a {info.family} model, not an ESRGAN upscaler; "
                "load it with mode='diffusion'"
            )
        files["upscaler"] = primary
        with _engine_errors("model_src"):
            up = _open_upscaler(primary, config, on_progress)
        model = LoadedModel(
            model_id,
            "upscale",
            "esrgan",
            model_src,
            files,
            config,
            (time.perf_counter() - start) * 1000,
            upscaler=up,
            upscale_factor=up.factor,
        )
    else:
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
                raise UnsupportedOperationError(
                    f"model_config.upscaler.model_src: {up_path.name} is not an ESRGAN model"
                )
            files["upscaler"] = up_path
        with _engine_errors("model_src"):
            ctx = _engine.Context(_engine_config(files, role, config), _load_progress_job(on_progress, "model"))
        model = LoadedModel(model_id, "diffusion", info.family, model_src, files, config, 0.0, context=ctx)
        model.default_sampler = ctx.default_sample_method()
        model.default_scheduler = ctx.default_scheduler(model.default_sampler)
        if "upscaler" in files:
            try:
                with _engine_errors("model_config.upscaler.model_src"):
                    model.upscaler = _open_upscaler(files["upscaler"], config, on_progress)
            except BaseException:
                ctx.close()  # don't leave the diffusion model loaded but unreachable
                raise
            model.upscale_factor = model.upscaler.factor
        model.load_ms = (time.perf_counter() - start) * 1000
    with _models_lock:
        _models[model_id] = model
    return model_id


def _open_upscaler(path: Path, config: dict[str, Any], on_progress: Callable[[dict], None] | None) -> Any:
    """An ESRGAN context, standalone (mode="upscale") or paired with a diffusion model."""
    return _engine.Upscaler(
        str(path),
        _threads(config),
        (config.get("upscaler") or {}).get("tile_size", 128),
        bool(config.get("offload_to_cpu", False)),
        False,  # direct convolution off
        _load_progress_job(on_progress, "upscaler"),
    )


def _threads(config: dict[str, Any]) -> int:
    threads = config.get("threads", -1)
    return _physical_cores() if threads == -1 else int(threads)


def _is_split(info: FileInfo, config: dict[str, Any]) -> bool:
    """A diffusion-only file (split layout) rather than an all-in-one checkpoint."""
    if families.get(info.family).split_layout or config.get("llm_model_src"):
        return True
    return not any(name.startswith(("model.diffusion_model.", "first_stage_model.")) for name in info.tensors)


def _check_companions(info: FileInfo, files: dict[str, Path]) -> None:
    """The engine aborts on a split model without the text encoder or VAE it needs."""
    family = families.get(info.family)
    for key in family.required_companions:
        role = COMPANION_KEYS[key]
        if role not in files:
            raise InvalidParameterError(f"model_config.{key}: a {family.label} diffusion model needs its {role} file")
    roles = [COMPANION_KEYS[key] for key in family.text_encoders]
    if family.requires_text_encoder and not any(r in files for r in roles) and "model" not in files:
        raise InvalidParameterError(
            f"model_config.{family.text_encoders[0]}: an {family.label} diffusion model needs its text encoders"
        )


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
    """Free a model's engine memory (cancelling its jobs); optionally delete its cached file."""
    check_unknown("unload_model", unexpected, ("model_id", "clear_storage"))
    check_bool("clear_storage", clear_storage)
    model = get_model(model_id)
    with _models_lock:
        _models.pop(model_id, None)
    jobs = runner.jobs_for(model_id)
    for job in jobs:
        job.cancel()
    for job in jobs:
        if not runner.on_worker_thread():
            try:
                job.outputs.exception()  # wait until the worker has let go of the model
            except Exception:  # noqa: BLE001 - only waiting
                pass
    with model.lock:
        model.close()
    if clear_storage:
        from . import download

        download.delete_cached(model.source)


@atexit.register
def _free_all() -> None:
    """Free engine memory before the interpreter tears nanobind down."""
    with _models_lock:
        models = list(_models.values())
        _models.clear()
    for model in models:
        for job in runner.jobs_for(model.model_id):
            job.cancel()
        with model.lock:
            model.close()


def require(model: LoadedModel, mode: str, operation: str) -> None:
    if model.mode != mode:
        other = "upscale" if mode == "diffusion" else "diffusion"
        raise UnsupportedOperationError(
            f"model_id: '{model.model_id}' was loaded with mode='{model.mode}', so it cannot run {operation}; "
            f"use {'diffusion' if model.mode == 'diffusion' else 'upscale'}() or load with mode='{other}'"
        )


_LOAD_PARAMS = (
    schema.Param("model_src", "str", "A catalogue constant, a local file path, an https:// URL or "
                 "hf://owner/repo/path[@revision]."),
    schema.Param("model_type", "choice", "What the model is for ('upscale': an ESRGAN model on its own); "
                 "model_config['mode'] takes precedence.", "diffusion", choices=schema.MODEL_TYPES),
    schema.Param("model_config", "dict", "Load options (camelCase spellings accepted), keys below.", None,
                 nullable=True, default_doc="None"),
    schema.Param("on_progress", "callable", "Called with a dict per download or load update.", None, nullable=True,
                 default_doc="None (a tqdm bar while downloading)"),
)
load_model.__doc__ = schema.docstring(
    "Load a model (downloading it and its companions if needed) and return its id.",
    _LOAD_PARAMS, "str\n    The model id, e.g. 'stable-diffusion-v2-1-Q8_0.gguf#1'.",
    extra_doc="\nmodel_config keys\n-----------------", extra_params=(*schema.MODEL_CONFIG, *(
        dataclasses.replace(p, name=f"upscaler.{p.name}") for p in schema.UPSCALER)),
)

__all__ = ["load_model", "unload_model", "get_model", "loaded_models", "LoadedModel", "CancelledError", "EngineError"]
