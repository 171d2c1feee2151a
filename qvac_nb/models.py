"""load_model / unload_model and the table of loaded models."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import itertools
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import docstrings, engine, families, runner, schema
from . import embeddings as embeddings_mod
from .checks import guards, tables
from .checks.values import check_bool, check_choice, check_path, check_unknown
from .errors import (
    CancelledError,
    EngineCrashedError,
    EngineError,
    InvalidParameterError,
    InvalidTypeError,
    ModelNotLoadedError,
    UnsupportedOperationError,
    suggest,
)
from .loaded_model import LoadedModel
from .modelfiles.companions import check_companion
from .modelfiles.detection import loaded_version
from .modelfiles.formats import FileInfo
from .modelfiles.reading import inspect_file
from .worker import protocol
from .worker.process import WorkerDied, WorkerProcess

# model_config key -> the file role (and ContextConfig attribute) of each companion file.
COMPANION_KEYS = schema.COMPANION_ROLES
CONFIG_KEYS = schema.CONFIG_KEYS
MODEL_TYPES = schema.MODEL_TYPES
LOAD_TRIES = 2  # a worker that crashes while loading is replaced once (see _load_retrying_a_crash)

log = logging.getLogger("qvac_nb.worker")


_models: dict[str, LoadedModel] = {}
_models_lock = threading.Lock()
# The identity of each shared load in progress -> set when it ends: other loads of it wait (one at a time).
_loading: dict[tuple[Any, ...], threading.Event] = {}
_ids = itertools.count(1)
_gpu_warned = False
# Called as listener(event, model_id) with event "loaded" or "unloaded" (e.g. a Studio's model list).
_listeners: list[Callable[[str, str], None]] = []


def add_listener(listener: Callable[[str, str], None]) -> None:
    """Call `listener(event, model_id)` after every load ("loaded") and unload ("unloaded")."""
    with _models_lock:
        _listeners.append(listener)


def remove_listener(listener: Callable[[str, str], None]) -> None:
    with _models_lock:
        if listener in _listeners:
            _listeners.remove(listener)


def _notify(event: str, model_id: str) -> None:
    with _models_lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event, model_id)
        except Exception:  # noqa: BLE001 - a view that fails to refresh must not fail the load
            pass


def normalize_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated model_config with camelCase aliases folded into snake_case keys (only the keys given)."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise InvalidTypeError(f"model_config: expected a dict, got {type(config).__name__}")
    return tables.validate(schema.MODEL_CONFIG, config, where="model_config", prefix="model_config.",
                           names=engine.enum_names(), fill=False)


def _check_upscaler(value: Any) -> dict[str, Any] | None:
    return tables.check_upscaler(value)


def _warn_cpu_fallback(config: dict[str, Any]) -> None:
    global _gpu_warned
    if config.get("device") == "gpu" and not _gpu_warned and not engine.facts().get("gpu_backend"):
        _gpu_warned = True
        warnings.warn(
            "device='gpu': this engine build has no GPU backend, so qvac_nb runs on the CPU. "
            "Install a CUDA/Metal/Vulkan build of stable-diffusion-cpp-python or set QVAC_NB_SD_LIBRARY.",
            RuntimeWarning,
            stacklevel=4,  # _warn_cpu_fallback < _load < load_model < the user's call
        )


def _resolve(src: str, role: str, on_progress: Callable[[dict], None] | None) -> tuple[Path, dict[str, Any]]:
    from .hub.resolve import resolve_for

    return resolve_for(src, role, on_progress)


def load_model(
    model_src: str | bytes | os.PathLike[str],
    *,
    model_type: str = "diffusion",
    model_config: Mapping[str, Any] | None = None,
    on_progress: Callable[[dict], None] | None = None,
    reload: bool = False,
    **unexpected: Any,
) -> str:
    """Load a model (downloading it and its companions if needed) and return its id.

    The model lives in a worker process of its own: whatever the engine does there (a crash,
    an abort, running out of memory) cannot take the notebook's kernel with it.

    Loading the same files with an equal `model_config` again (a re-run cell) returns the id
    already loaded instead of a second copy, also while that copy is still loading (the later calls
    wait for it); `reload=True` loads a fresh copy and unloads the old one.
    """
    check_unknown("load_model", unexpected, ("model_src", "model_type", "model_config", "on_progress", "reload"))
    if not isinstance(reload, bool):
        raise InvalidTypeError(f"reload: expected True or False, got {type(reload).__name__}")
    return _load(model_src, model_type, model_config, on_progress, reuse=not reload, shared=True)


def load_copy(model_src: str | os.PathLike[str], *, model_type: str = "diffusion",
              model_config: Mapping[str, Any] | None = None,
              on_progress: Callable[[dict], None] | None = None) -> str:
    """A private copy of a model (its own worker) that `load_model` never hands out: for parallel batches."""
    return _load(model_src, model_type, model_config, on_progress, reuse=False, shared=False)


def load_model_until(stop: threading.Event, model_src: str, *, model_config: Mapping[str, Any] | None = None,
                     on_progress: Callable[[dict], None] | None = None) -> str:
    """`load_model` that gives up with CancelledError once `stop` is set (the Studio's Cancel while loading).

    A download stops at its next chunk (the partial file stays, the next load resumes it); an engine
    load stops within a poll because its worker is killed: nothing of it stays in memory.
    """
    def progress(info: dict) -> None:
        if stop.is_set():
            raise CancelledError(f"loading {model_src} was cancelled")
        if on_progress is not None:
            on_progress(info)

    return _load(model_src, "diffusion", model_config, progress, reuse=True, shared=True, stop=stop)


def _load(model_src: Any, model_type: str, model_config: Mapping[str, Any] | None,
          on_progress: Callable[[dict], None] | None, *, reuse: bool, shared: bool,
          stop: threading.Event | None = None) -> str:
    model_src = check_path("model_src", model_src)  # bytes and non-UTF-8 names come back as str
    if not model_src:
        raise InvalidParameterError("model_src: must name a catalogue constant, a path, an https URL or hf://...")
    check_choice("model_type", model_type, MODEL_TYPES)
    if on_progress is not None and not callable(on_progress):
        raise InvalidTypeError("on_progress: expected a callable taking one dict")
    # The worker starts (imports, opens the engine) while the files are checked and fetched here.
    worker = WorkerProcess("a new model")
    claim: threading.Event | None = None
    try:
        model = _prepare(model_src, model_type, model_config, on_progress)
        if not engine.facts():
            engine.remember_facts(worker.wait_ready())
        _warn_cpu_fallback(model.config)
        model.shared = shared
        model.identity = _identity(model)
        same = None
        if shared:
            same, claim = _claim(model, reuse, stop, worker.kill)
            if claim is None and same is not None:  # loaded already (perhaps by the load waited for): hand it out
                worker.kill()
                return same.model_id
            if worker.killed_on_purpose:  # ended while this call waited for another load of the model
                worker = WorkerProcess("a new model")
        model.model_id = f"{model.model_id}#{next(_ids)}"
        worker.label = f"model '{model.model_id}'"
        worker = _load_retrying_a_crash(worker, model, on_progress, stop)
        # The runner first: a caller handed this id (a waiting load) can run a job at once.
        runner.register(model, worker, functools.partial(start_worker, model))
        with _models_lock:
            _models[model.model_id] = model
    except BaseException:
        worker.kill()
        raise
    finally:
        if claim is not None:
            _release(model.identity, claim)
    _notify("loaded", model.model_id)
    if same is not None:  # reload=True: the fresh copy replaces the old one
        unload_model(model_id=same.model_id)
    return model.model_id


def _identity(model: LoadedModel) -> tuple[Any, ...]:
    """What makes two loads the same model: mode, each file (path, size, modification time) and the config."""
    files: list[tuple[str, str, int | None, int | None]] = []
    for role, path in [*sorted(model.files.items()), *((f"embedding {n}", p) for n, p in model.embeddings.items())]:
        try:
            st = path.stat()
            files.append((role, str(path.resolve()), st.st_size, st.st_mtime_ns))
        except OSError:
            files.append((role, str(path), None, None))
    return model.mode, tuple(files), repr(sorted(model.config.items()))


def _claim(model: LoadedModel, reuse: bool, stop: threading.Event | None,
           before_waiting: Callable[[], None]) -> tuple[LoadedModel | None, threading.Event | None]:
    """One load at a time per identity: wait while the same files and config are loading, then decide.

    Returns (the loaded copy with this identity or None, the claim). Without a claim the caller hands
    that copy out (`reuse`); with one it loads, then must `_release` it. A load that fails hands
    nothing out: the next waiter loads itself (so a cancel of the first caller stops only that call).
    `before_waiting` runs once before a wait (it ends the caller's idle worker).
    """
    waited = False
    while True:
        with _models_lock:
            same = next((m for m in _models.values() if m.shared and m.identity == model.identity), None)
            busy = _loading.get(model.identity)
            if busy is None:
                if same is not None and reuse:
                    return same, None
                claim = _loading[model.identity] = threading.Event()
                return same, claim
        if not waited:
            before_waiting()
            waited = True
        while not busy.wait(0.25):  # a bounded wait: a Studio cancel (`stop`) is seen within a poll
            if stop is not None and stop.is_set():
                raise CancelledError(f"loading {model.source} was cancelled")


def _release(identity: tuple[Any, ...], claim: threading.Event) -> None:
    with _models_lock:
        if _loading.get(identity) is claim:
            del _loading[identity]
    claim.set()


def _prepare(model_src: str, model_type: str, model_config: Mapping[str, Any] | None,
             on_progress: Callable[[dict], None] | None) -> LoadedModel:
    """Validate the config, fetch and check every file: the handle of a model not loaded yet."""
    config = normalize_config(model_config)
    guards.check_load_config(config)
    mode = config.get("mode", model_type)

    primary, defaults = _resolve(model_src, "model_src", on_progress)
    for key, value in defaults.items():
        config.setdefault(key, value)
    info = inspect_file(primary, "model_src")
    files: dict[str, Path] = {}
    # The id is typed back by users: show bytes that are not UTF-8 as \xNN rather than as surrogates.
    shown = Path(model_src).name.split("@")[0].encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    model_id = shown  # load_model appends "#n" once it knows this is a new copy

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
    _check_mode(primary.name, info.family, mode, "model_config.mode" if "mode" in config else "model_type")
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
        _check_other_companion(info, key, companion)
    _check_unet_split(info, role, files)  # after: a companion the family cannot take is the clearer error
    up_cfg = config.get("upscaler")
    if up_cfg and up_cfg.get("model_src"):
        # Resolved and checked before the diffusion model: a bad upscaler fails in seconds, not after a load.
        up_path, _ = _resolve(up_cfg["model_src"], "model_config.upscaler.model_src", on_progress)
        up_info = inspect_file(up_path, "model_config.upscaler.model_src")
        if up_info.family not in ("esrgan", "unknown"):
            raise UnsupportedOperationError(f"model_config.upscaler.model_src: {up_path.name} is not an ESRGAN model")
        files["upscaler"] = up_path
    model = LoadedModel(model_id, mode, info.family, model_src, files, config, 0.0, role=role,
                        version=loaded_version(info, role))
    model.embeddings = embeddings_mod.resolve(config.get("embeddings"), info.family, families.get(info.family).label,
                                              lambda src, where: _resolve(src, where, on_progress)[0])
    return model


def _check_mode(name: str, family: str, mode: str, param: str) -> None:
    """A video model loads with mode='video' and an image model without it: each runs only its own call.

    `param` is where the mode came from (model_config.mode or model_type), which the error names."""
    row = families.get(family)
    if row.makes == "video" and mode != "video":
        raise UnsupportedOperationError(
            f"{param}: {name} is a {row.label} video model; load it with model_config={{'mode': 'video'}} "
            "and generate with qvac_nb.video()", param=param)
    if mode == "video" and row.makes != "video":
        raise UnsupportedOperationError(
            f"{param}: {name} is a {row.label} image model, not a video model (Wan); load it without "
            "mode='video' and generate with qvac_nb.diffusion()", param=param)


def _load_in(worker: WorkerProcess, model: LoadedModel, on_progress: Callable[[dict], None] | None,
             stop: threading.Event | None = None) -> None:
    """Have `worker` load `model`, relaying its load ticks; fills in what the engine reports.

    Once `stop` is set this raises CancelledError; the caller kills the worker, and the load with it.
    A worker that stops answering pings (a slow load still answers them) is ended: EngineCrashedError.
    """
    worker.send(protocol.LOAD, None, model.worker_spec())
    liveness = runner.Liveness(worker)
    while True:
        if stop is not None and stop.is_set():
            raise CancelledError(f"loading {model.source} was cancelled")
        try:
            msg = worker.recv(0.25 if stop is not None else 1.0)
            if msg is None:
                if liveness.stopped():
                    raise liveness.end("loading the model", "loading again starts a new worker")
                continue
        except WorkerDied:
            raise worker.crash_error("loading the model", reload_note=False) from None
        liveness.heard()
        if msg[0] == protocol.LOAD_TICK and on_progress is not None:
            _, role, step, total, elapsed = msg
            on_progress({"phase": "load", "role": role, "percentage": 100.0 * step / total if total else 0.0,
                         "step": step, "total_steps": total, "elapsed_ms": elapsed})
        elif msg[0] == protocol.ERROR:
            error = protocol.decode_error(msg[2])
            what = "model_config.upscaler.model_src" if model.has_upscaler and "upscal" in str(error).lower() \
                else _blame(model, error)
            if isinstance(error, CancelledError):
                raise CancelledError(f"loading {what} was cancelled")
            raise type(error)(f"{what}: {error}{_layout_hint(error)}") if type(error) is EngineError else error
        elif msg[0] == protocol.LOADED:
            loaded = msg[1]
            model.default_sampler = loaded["default_sampler"]
            model.default_scheduler = loaded["default_scheduler"]
            model.upscale_factor = loaded["upscale_factor"]
            model.load_ms = loaded["load_ms"]
            return


def start_worker(model: LoadedModel, on_progress: Callable[[dict], None] | None = None,
                 stop: threading.Event | None = None) -> WorkerProcess:
    """A new worker with `model` loaded again (after a crash, or a cancel that had to end the last one).

    Once `stop` is set (the job waiting for it was cancelled, the model unloaded) this raises CancelledError.
    """
    return _load_retrying_a_crash(WorkerProcess(f"model '{model.model_id}'"), model, on_progress, stop)


def _load_retrying_a_crash(worker: WorkerProcess, model: LoadedModel, on_progress: Callable[[dict], None] | None,
                           stop: threading.Event | None = None) -> WorkerProcess:
    """Start `worker` and load `model` in it; if it dies of a signal doing so, load once more in a new worker.

    A load changes nothing outside its worker, so the second try costs only time. The engine has been
    seen to crash, rarely, while loading files that load fine every other time (SD 1.5 with a ControlNet);
    a crash that comes back is the input's, and is raised. Ended by SIGKILL (a cancel, the out-of-memory
    killer) or exiting with a code, the worker is not replaced.
    """
    tries = 1
    while True:
        try:
            worker.wait_ready()
            _load_in(worker, model, on_progress, stop)
            return worker
        except EngineCrashedError as exc:
            worker.kill()
            code = exc.exit_code
            if tries < LOAD_TRIES and code is not None and code < 0 and code != -signal.SIGKILL \
                    and not (stop is not None and stop.is_set()):
                log.warning("loading once more in a new worker: %s", exc)
                worker = WorkerProcess(worker.label)
                tries += 1
                continue
            if tries > 1:
                exc.args = (f"{exc.args[0]} The load crashed the same way in a second worker.",)
            raise
        except BaseException:
            worker.kill()
            raise


# Companions the family table does not describe: what each must not be. A file detected as one of these
# kinds would load under the companion's prefix beside the model's own tensors and be ignored or clash.
_NOT_A_DIFFUSION_PART = ("vae", "esrgan")
_ENCODER_PARTS = ("clip_vision_model_src", "llm_vision_model_src", "photo_maker_model_src")


def _check_other_companion(primary: FileInfo, key: str, companion: FileInfo) -> None:
    """The checks of clip_vision, llm_vision, high-noise diffusion and PhotoMaker files (after inspect_file)."""
    role = f"model_config.{key}"
    kind = companion.family
    diffusion = kind not in (*families.COMPONENT_FAMILIES, "esrgan", "unknown")
    if key == "high_noise_diffusion_model_src":
        if not diffusion and kind != "unknown":
            raise UnsupportedOperationError(f"{role}: {companion.path.name} is a {kind} file, not a diffusion model")
        if diffusion and kind != primary.family:
            raise UnsupportedOperationError(
                f"{role}: {companion.path.name} is a {families.get(kind).label} model but {primary.path.name} is a "
                f"{families.get(primary.family).label} model; the high-noise model must be the same family")
    elif key in _ENCODER_PARTS and (diffusion or kind in _NOT_A_DIFFUSION_PART):
        raise UnsupportedOperationError(
            f"{role}: {companion.path.name} is a {families.get(kind).label if diffusion else kind} "
            f"{'model' if diffusion else 'file'}, not a {COMPANION_KEYS[key].replace('_', ' ')} file")
    if key == "photo_maker_model_src" and families.get(primary.family).kind != "unet":
        raise UnsupportedOperationError(
            f"{role}: PhotoMaker works with SD 1.x/2.x/XL models, not {families.get(primary.family).label}")


# Where the engine puts a companion's tensors: a load that fails over tensors named so failed over that file.
_ENGINE_PREFIXES = {"pmid.": "photo_maker_model_src",
                    "model.high_noise_diffusion_model.": "high_noise_diffusion_model_src",
                    "text_encoders.llm.visual.": "llm_vision_model_src"}


def _blame(model: LoadedModel, error: BaseException) -> str:
    """The parameter an engine load error is about: a companion whose tensors it names, else model_src."""
    text = str(error)
    for prefix, key in _ENGINE_PREFIXES.items():
        if COMPANION_KEYS[key] in model.files and f"'{prefix}" in text:
            return f"model_config.{key}"
    return "model_src"


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


# A U-Net-only file (the split layout) loads for SDXL with both text encoders and a VAE (see
# worker/split_unet.py); the engine cannot tell SD 1.x/2.x apart without their text encoder inside.
_SPLIT_UNET_NEEDS = {"clip_l": "clip_l_model_src", "clip_g": "clip_g_model_src", "vae": "vae_model_src"}


def _check_unet_split(info: FileInfo, role: str, files: dict[str, Path]) -> None:
    family = families.get(info.family)
    if role != "diffusion_model" or family.kind != "unet":
        return
    if info.family != "sdxl":
        raise UnsupportedOperationError(
            f"model_src: {info.path.name} is a {family.label} U-Net without its text encoder and VAE; the engine "
            "loads SD 1.x/2.x only as a single checkpoint (U-Net, text encoder and VAE in one file). U-Net-only "
            "files work for SDXL (with clip_l, clip_g and vae) and the DiT families"
        )
    missing = [key for file_role, key in _SPLIT_UNET_NEEDS.items() if file_role not in files]
    if missing:
        raise InvalidParameterError(
            f"model_config.{missing[0]}: an SDXL U-Net-only file needs its text encoders and VAE: "
            f"model_config {', '.join(_SPLIT_UNET_NEEDS.values())} (missing: {', '.join(missing)})"
        )


LAYOUT_HINT = (
    "\nThe engine could not tell which model this is from its tensor names. Layouts that load: an all-in-one "
    "checkpoint (SD 1.x, 2.x, XL, SD3); an SDXL U-Net-only file with clip_l_model_src, clip_g_model_src and "
    "vae_model_src; a FLUX.2 diffusion model with llm_model_src and vae_model_src; FLUX.1/SD3 diffusion models with "
    "their text encoders. SD 1.x/2.x U-Net-only files do not load (use a single-file checkpoint)."
)


def _layout_hint(error: BaseException) -> str:
    return LAYOUT_HINT if "get sd version from file failed" in str(error) else ""


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
    _notify("unloaded", model_id)
    if clear_storage:
        from .hub.resolve import delete_cached

        delete_cached(model.source)


@atexit.register
def _free_all() -> None:
    """End every worker at interpreter exit, so nothing outlives the kernel (and exit stays fast)."""
    with _models_lock:
        _models.clear()
    runner.close_all()


def require(model: LoadedModel, mode: str, operation: str) -> None:
    if model.mode != mode:
        raise UnsupportedOperationError(
            f"model_id: '{model.model_id}' was loaded with mode='{model.mode}', so it cannot run {operation}; "
            f"use {model.mode}() or load with mode='{mode}'", param="model_id"
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
load_model.__doc__ = docstrings.docstring(
    "Load a model (downloading it and its companions if needed) and return its id.\n\n"
    "The model lives in a worker process of its own: whatever the engine does there (a crash, an abort,\n"
    "running out of memory) cannot take the notebook's kernel with it.",
    _LOAD_PARAMS, "str\n    The model id, e.g. 'stable-diffusion-v2-1-Q8_0.gguf#1'.",
    extra_doc="\nmodel_config keys\n-----------------", extra_params=(*schema.MODEL_CONFIG, *(
        dataclasses.replace(p, name=f"upscaler.{p.name}") for p in schema.UPSCALER)),
)

__all__ = ["load_model", "unload_model", "get_model", "loaded_models", "LoadedModel", "CancelledError", "EngineError"]
