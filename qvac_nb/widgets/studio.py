"""The Studio: a form, live progress with latent previews, and a gallery, over the plain API."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import traitlets as t

from .. import families, history_folder, records, schema
from .. import models as model_table
from ..catalog import CATALOG
from ..checks.values import check_writable_folder
from ..engine import enum_names
from ..errors import CancelledError, InvalidParameterError, QvacError, UnsupportedOperationError
from ..generation import diffusion
from ..jobs import Job
from ..loaded_model import LoadedModel
from ..modelfiles.reading import inspect_file
from ..png import record_of, replayable_params
from ..progress_stream import ProgressTick
from ..video_files import Video
from ..video_generation import model_inputs, video
from . import assets
from .base import ImageWidget
from .family_form import companion_fields, companion_needs, rules_for
from .follow import follow_job
from .form_schema import form_schema
from .gallery import record_extra
from .init_fit import fit_init
from .inputs import FeatureInputs
from .params import (
    FORM_DEFAULTS,
    REUSABLE,
    diffusion_kwargs,
    form_from_record,
    given_fields,
    initial_form,
    merge_form,
    model_form_defaults,
    params_from_json,
    params_to_json,
    rebase_form,
)
from .progress import idle_status
from .studio_grid import Axis, GridHooks, GridRun, StudioGridRunner, sheet_reuse
from .thumbs import image_size, thumbnail, to_png
from .upscaling import can_upscale, upscale_image

LOAD_PHASES = {"download": "downloading", "load": "loading"}
STUDIO_MODES = ("diffusion", "video")  # what the Studio generates with; an upscaler is used through a model
# The model bar's companion fields (every companion key of the family table): load message field -> label, key.
_BAR_COMPANIONS = {f["field"]: f for f in companion_fields()}
_BY_KEY = {f["key"]: f for f in _BAR_COMPANIONS.values()}
# The form's size menu (width x height); anything else is typed in.
SIZE_PRESETS = ((512, 512), (768, 768), (1024, 1024), (512, 768), (768, 512), (832, 1216), (1216, 832),
                (1024, 576), (576, 1024))
# Restored settings that suit any model: they stay when the first model chosen is of another family.
_ANY_FAMILY = ("prompt", "negative_prompt", "seed")


def rules_for_model(model: LoadedModel) -> dict[str, Any]:
    """The form rules of a loaded model: its family row's, less what the model was loaded without (a
    ControlNet's strength, an upscaler's passes); for a video model what its network reads (a first frame,
    a last frame, the high-noise expert's settings, Wan 2.2 TI2V's size step of 32)."""
    row = families.for_model(model)
    if model.mode != "video":
        rules = rules_for(row)
        # What the model was loaded with: ControlNet strength without a ControlNet, upscale passes without
        # an upscaler, would be fields that change nothing.
        unused = {"control_strength"} if "control_net" not in model.files else set()
        if not model.has_upscaler:
            unused.add(schema.UPSCALE_REPEATS.name)
        rules["hidden"] = sorted({*rules["hidden"], *unused})
        return rules
    takes = model_inputs(model)
    rules = rules_for(row, has_high_noise=takes["high_noise"])
    rules["size_multiple"] = takes["size_multiple"]
    rules["end_image"] = takes["end_image"]
    if not takes["init_image"]:
        rules["init_label"] = ""
    return rules
LOAD_STATUS_INTERVAL_S = 0.1
# A new Studio shows at most this many of its folder's newest images (each costs a thumbnail).
HISTORY_SHOWN = 200
_DEFAULT_FOLDER = object()  # `output_dir` not given: qvac_nb_outputs/ in the working folder


def _catalog_names() -> dict[str, Any]:
    diffusion_roles = ("model", "diffusion_model")
    return {
        "diffusion": [name for name, e in CATALOG.items() if e.role in diffusion_roles],
        "upscaler": [name for name, e in CATALOG.items() if e.role == "upscaler"],
        # The model bar's companion fields, each with the catalogue names it suggests (entries of its role).
        "companion_fields": [{**f, "names": [name for name, e in CATALOG.items() if e.role == f["field"]]}
                             for f in _BAR_COMPANIONS.values()],
        # What a catalogue name brings along (the model bar shows it): {name: {"llm_model_src": ..., ...}}
        "companions": {name: dict(e.companions) for name, e in CATALOG.items() if e.companions},
        "predictions": list(schema.PREDICTIONS),
    }


def source_info(source: str) -> dict[str, Any]:
    """What the model bar needs to know about a model to load: its family, and the companions it asks for.

    A catalogue name says its family; a local file is told by its header (read, not loaded). Anything
    else (a URL, a name not found) has no family yet: every companion field is offered, optional.
    """
    family = ""
    entry = CATALOG.get(source)
    if entry is not None:
        family = entry.family
    elif source and not source.startswith(("hf://", "http://", "https://")):
        try:
            family = inspect_file(Path(source).expanduser()).family
        except (OSError, QvacError):
            family = ""  # not a readable model file (yet): Load says why
    row = families.FAMILIES.get(family)
    return {"source": source, "family": family if row else "", "label": row.label if row else "",
            "companions": companion_needs(row)}


def model_info(model_id: str) -> dict[str, Any]:
    model = model_table.get_model(model_id)
    row = families.for_model(model)  # the family row with the settings of the model's variant
    return {
        "id": model.model_id, "family": model.family, "label": row.label, "source": model.source, "mode": model.mode,
        "uses_guidance": model.uses_guidance, "has_upscaler": model.has_upscaler,
        "upscale_factor": model.upscale_factor, "default_sampler": model.default_sampler or "",
        "default_scheduler": model.default_scheduler or "",
        # The model's own defaults among the schema's choices (the form labels its "default" option with them).
        "engine_defaults": [name for name in (model.default_sampler, model.default_scheduler) if name],
        # Where the form starts for this model: its family's defaults and its variant's (FLUX.2 klein: 4 steps).
        "defaults": dict(row.defaults),
        "prediction": model.prediction,
        "companions": {role: path.name for role, path in model.files.items() if role not in (model.role, "upscaler")},
    }


class Studio(ImageWidget):
    """Generate images (or videos) with a loaded model from a form; everything made lands in the gallery.

    `Studio(model_id=None, *, model_config=None, output_dir=..., lora_dir=None, **defaults)`:
    `model_id` is a model from `load_model` (or load one from the widget); `defaults` are
    `diffusion` parameters that prefill the form (prompt, width, steps, seed, upscale,
    init_image, ...); `model_config` is used for models loaded from the widget. The form follows
    the model's family (qvac_nb/families.py): a field the family ignores is hidden and not passed,
    and choosing a model moves every field still at the previous model's default (including the
    values the form started with) to the new model's, while values set in `defaults`, in the
    widget or from an image ("reuse") stay. Beside the form:
    a LoRA picker (the LoRA files in `lora_dir`, default `loras/` in the working folder), a mask
    painter over the init image (inpainting), reference images for FLUX.2 and a control image
    for a model loaded with a ControlNet, each shown only where the model can use it. The Grid
    section (or `studio.grid(x, y)`) makes one image per combination of one or two varied parameters.

    With a video model (Wan, loaded with model_config={'mode': 'video'}) the form shows the video's
    fields (frames, fps, file format), the init image is the first frame and a last-frame input shows
    where the model reads one; Generate runs `video()`, and the clip plays in the gallery.

    Every image is also saved, with its parameters inside the PNG, into `output_dir` (default
    `qvac_nb_outputs/` in the working folder; None saves nothing), and a new Studio, even in
    a restarted kernel, shows that folder's newest images: `qvac_nb.history(output_dir)` lists
    them, `qvac_nb.Gallery.from_folder(output_dir)` browses them. Its form starts from the settings
    of the newest image there (of the model's family, when a model is given), seed policy included;
    `defaults` win, and the family's defaults fill what the image's record does not carry.
    """

    _esm = assets.esm("studio")
    _css = assets.css("studio")

    # Not `model_id`: ipywidgets' Widget.model_id is the comm id the front-end looks the view up by.
    current_model = t.Unicode("").tag(sync=True)
    model_info = t.Dict().tag(sync=True)
    loaded = t.List(t.Unicode()).tag(sync=True)  # ids of every loaded diffusion model
    catalog = t.Dict().tag(sync=True)
    samplers = t.List(t.Unicode()).tag(sync=True)
    schedulers = t.List(t.Unicode()).tag(sync=True)
    params = t.Dict().tag(sync=True, to_json=params_to_json, from_json=params_from_json)
    form_rules = t.Dict(help="What the form shows for the current model's family (family_form.form_rules): "
                        "{hidden, size_multiple, init_label, init_params, mask, ref_images}.").tag(sync=True)
    source_info = t.Dict(help="The model bar's model to load: {source, family, label, companions: {model_config "
                         "key: 'required' | 'one of' | 'optional'}} (source_info()).").tag(sync=True)
    schema = t.Dict(help="The parameter schema (qvac_nb.widgets.form_schema): the front-end builds the form's "
                    "controls, limits, choice lists and family rules from it.").tag(sync=True)
    size_presets: t.List[list[int]] = t.List(help="[width, height] pairs offered by the form's size menu.").tag(
        sync=True)
    status = t.Dict().tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    gallery: t.List[dict[str, Any]] = t.List().tag(sync=True)  # newest first; thumbnails only
    init_image = t.Dict().tag(sync=True)  # {name, thumb, width, height} or {}
    output_dir = t.Unicode("", help="The folder every image is saved into ('' when saving is off).").tag(
        sync=True)
    # The inputs beyond the form (FeatureInputs, inputs.py, sets them; js/src/feature-inputs.js shows them).
    ref_images: t.List[Any] = t.List(
        help="FLUX.2 reference images: [{name, width, height, thumb}] (full size kept in the kernel).").tag(sync=True)
    control_image: t.List[Any] = t.List(
        help="The ControlNet image, [] or one {name, width, height, thumb}.").tag(sync=True)
    end_image: t.List[Any] = t.List(
        help="A first/last-frame video's last frame, [] or one {name, width, height, thumb}.").tag(sync=True)
    mask = t.Dict(help="The painted inpainting mask: {width, height} once painted, else {}.").tag(sync=True)
    lora_files: t.List[Any] = t.List(
        help="LoRA files the picker offers: [{name, source}] found in lora_folders.").tag(sync=True)
    lora_folders = t.List(t.Unicode(), help="Where the picker looks, as the user sees them (relative to the working "
                          "folder where possible).").tag(sync=True)
    lora: t.List[Any] = t.List(
        help="The LoRAs switched on in the picker: [[source, weight], ...] (diffusion's lora).").tag(sync=True)
    inputs_shown = t.Dict(help="Which inputs apply to the current model: {ref_images, control_image, end_image, "
                          "mask, lora}.").tag(sync=True)

    def __init__(self, model_id: str | None = None, *, model_config: Mapping[str, Any] | None = None,
                 output_dir: str | os.PathLike[str] | None | object = _DEFAULT_FOLDER,
                 lora_dir: str | os.PathLike[str] | None = None, **defaults: Any) -> None:
        form = initial_form(defaults)
        folder = _output_folder(output_dir)
        names = enum_names()
        super().__init__(params=form, status=idle_status(), catalog=_catalog_names(),
                         samplers=list(names["sample_method"]), schedulers=list(names["scheduler"]),
                         schema=form_schema(), size_presets=[list(size) for size in SIZE_PRESETS],
                         output_dir=str(folder or ""), form_rules=rules_for(None), source_info=source_info(""))
        # The defaults the form's untouched fields hold (the current model's), and the fields set on purpose
        # (here, in the widget, by "reuse"): choosing another model moves the former only.
        self._form_base = dict(FORM_DEFAULTS)
        self._pinned = given_fields(defaults)
        self._rebasing = False
        self.observe(self._note_edits, names="params")
        self._folder = folder
        self._current_identity: tuple[Any, ...] | None = None
        # Settings restored from the history folder: (their image's family, the fields set); the first model
        # chosen keeps them or moves them to its defaults (select_model).
        self._restored: tuple[str, set[str]] | None = None
        if folder is not None:
            self.gallery = self._history_entries(folder)
            self._restore_settings(model_table.get_model(model_id).family if model_id is not None else "")
        self._model_config = dict(model_config or {})
        self._lock = threading.RLock()
        self._job: Job | None = None
        self._load_stop = threading.Event()  # set by cancel(): the load under way gives up
        self._grid = StudioGridRunner(GridHooks(set_status=self._set_status, send_preview=self._send_preview,
                                                set_job=self._set_job, add_images=self._add_images,
                                                end_job=self._end_job))
        self._init_png: bytes | None = None
        self._inputs = FeatureInputs(self, [lora_dir] if lora_dir is not None else None)
        self._refresh_loaded()
        _follow_model_table(self)
        if model_id is not None:
            self.select_model(model_id)
        if defaults.get("init_image") is not None:
            self.set_init_image(to_png(defaults["init_image"]), "init_image.png")
        self._handlers.update(self._inputs.handlers())
        self._handlers.update({
            "generate": self._msg_generate,
            "grid": self._msg_grid,
            "cancel": lambda _c, _b: self.cancel(),
            "load_model": self._msg_load,
            "select_model": lambda c, _b: self.select_model(str(c.get("model_id", ""))),
            "source_info": lambda c, _b: setattr(self, "source_info", source_info(str(c.get("source") or "").strip())),
            "init_image": lambda c, b: self._msg_init_image(c, b),
            "clear_init": lambda _c, _b: self.clear_init_image(),
            "reuse_seed": lambda c, _b: self.reuse(str(c.get("id")), seed_only=True),
            "reuse_all": lambda c, _b: self.reuse(str(c.get("id"))),
            "use_as_init": lambda c, _b: self.use_as_init(str(c.get("id"))),
            "upscale": lambda c, _b: self.upscale(str(c.get("id"))),
            "clear_error": lambda _c, _b: self.clear_error(),
        })

    # -- the history folder ------------------------------------------------------------------

    def _history_entries(self, folder: Path) -> list[dict[str, Any]]:
        entries = []
        for record in history_folder.history(folder, limit=HISTORY_SHOWN):
            entry = self._store.add_file(record.path, **record_extra(record))
            if entry is not None:
                entries.append(entry)
        return entries

    def _made_by(self, model: str) -> dict[str, Any]:
        """How a job starting now makes its images, for their gallery entries: the model and its family, the
        form's seed policy (a new Studio on the folder restores it) and the fields the form hides for the model
        (a record's values for them did not apply, so the full-size view leaves them out)."""
        return {"model": model, "family": self.model_info.get("family", ""),
                "random_seed": bool(self.params.get("random_seed")),
                "hidden": frozenset(self.form_rules.get("hidden") or ())}

    def _keep_video(self, clip: Video, made: Mapping[str, Any]) -> dict[str, Any]:
        """The gallery entry of a new video, saved into the history folder first when there is one."""
        extra = {"kind": "video", **_entry_facts(made, replayable_params(clip.record))}
        if self._folder is not None:
            try:
                record = history_folder.save(bytes(clip), clip.record, self._folder, extra=extra,
                                             suffix=f".{clip.format}")
            except (OSError, QvacError) as exc:  # a full disk: the video stays in this session at least
                self._show_error(f"output_dir: could not save the video into {str(self._folder)!r} ({exc}); "
                                 "it is kept in this session only")
            else:
                return self._store.add_video(clip, path=record.path, created=record.created.isoformat(), **extra)
        return self._store.add_video(clip, **extra)

    def _keep(self, png: bytes, *, kind: str, made: Mapping[str, Any], source: str | None,
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The gallery entry of a new image, saved into the history folder first when there is one.

        `made` is `_made_by`'s; `extra` adds entry keys (a grid sheet's description, axes and base parameters).
        """
        params = replayable_params(record_of(png))
        more = dict(extra or {})
        # A grid sheet has no record of its own: what made it is its base parameters.
        extra = {"kind": kind, **_entry_facts(made, more.get("grid_base") or params), **more}
        if self._folder is None:
            return self._store.add(png, source=source, **extra)
        try:
            record = history_folder.save(png, params, self._folder, extra=extra)
        except (OSError, QvacError) as exc:  # e.g. a full disk: the image stays in this session at least
            self._show_error(f"output_dir: could not save the image into {str(self._folder)!r} ({exc}); "
                             "it is kept in this session only")
            return self._store.add(png, source=source, **extra)
        return self._store.add(png, path=record.path, source=source, created=record.created.isoformat(), **extra)

    def _restore_settings(self, family: str) -> None:
        """Start the form from the settings of the folder's newest image, as "All" would put them back (a new
        Studio, e.g. after a kernel restart, carries on where the last one stopped); once, at creation.

        With a model (`family`), the newest image of that family; else the newest. Fields given to the
        Studio stay as given; the seed policy is the one saved with the image (random when not saved). The
        first model chosen keeps these settings if it is of the image's family; a model of another family
        keeps only the prompts and seed and moves the rest to its own defaults (select_model).
        """
        made = [e for e in self.gallery if e.get("seed") is not None and e.get("params")]
        entry = next((e for e in made if family and e.get("family") == family), made[0] if made else None)
        if entry is None:
            return
        keys = tuple(k for k in REUSABLE if k not in self._pinned)
        form = form_from_record(self.params, entry["params"], keys)
        if "random_seed" not in self._pinned:
            form["random_seed"] = entry.get("random_seed") is not False
        self._rebasing = True  # not the user's edits: a model chosen next may still move them
        try:
            self.params = form
        finally:
            self._rebasing = False
        self._restored = (str(entry.get("family") or ""), {k for k in keys if k in entry["params"]})

    # -- the model ---------------------------------------------------------------------------

    def _refresh_loaded(self) -> None:
        ids = []
        for mid in model_table.loaded_models():
            try:
                if model_table.get_model(mid).mode in STUDIO_MODES:
                    ids.append(mid)
            except QvacError:
                continue
        self.loaded = ids

    def _on_models_changed(self, event: str, model_id: str) -> None:
        """Models loaded or unloaded in code (or by another widget): keep the model bar true."""
        self._refresh_loaded()
        if event != "unloaded" or model_id != self.current_model:
            return
        # A reload (load_model(..., reload=True)) loads the new copy first: follow it to that copy.
        successor = next((mid for mid in self.loaded if self._current_identity and
                          _identity_of(mid) == self._current_identity), None)
        if successor is not None:
            self.select_model(successor)
            return
        with self.hold_sync():
            self.current_model = ""
            self.model_info = {}
            self.form_rules = rules_for(None)
        self._inputs.show_for(None)
        self.status = {**idle_status(), "message": f"model '{model_id}' was unloaded; load or choose a model"}

    def select_model(self, model_id: str) -> None:
        """Use an already loaded diffusion (or video) model; the form moves to its family's (and variant's)
        defaults."""
        model = model_table.get_model(model_id)
        if model.mode not in STUDIO_MODES:
            model_table.require(model, "diffusion", "the Studio")
        info = model_info(model_id)
        base = model_form_defaults(info["defaults"])
        old, keep = self._rebase_from(info["family"])
        # One update: the front-end sees the new defaults, rules and model together.
        with self.hold_sync():
            self._rebasing = True
            try:
                self.params = rebase_form(self.params, old, base, keep)
            finally:
                self._rebasing = False
            self._form_base = base
            self.model_info = info
            row = families.for_model(model)
            self.form_rules = rules_for_model(model)
            self._inputs.show_for(row, has_control_net="control_net" in model.files,
                                  end_image=bool(self.form_rules.get("end_image")))
            self._current_identity = _identity_of(model_id)
            self.current_model = model_id
        self._fitted_init()
        self._refresh_loaded()
        self.error = ""

    def _rebase_from(self, family: str) -> tuple[dict[str, Any], set[str]]:
        """The defaults the form moves from and the fields it keeps, as a model of `family` is chosen.

        Settings restored from the history folder (once, for the first model chosen) stay with a model of
        their image's family; with another family's, only the prompts and seed stay (a SD 1.x image's cfg
        and steps are not a FLUX.2 model's) and the rest moves to the model's defaults.
        """
        old, keep = dict(self._form_base), set(self._pinned)
        if self._restored is not None:
            restored_family, restored = self._restored
            self._restored = None
            if restored_family == family:
                keep |= restored
            else:
                moved = restored - keep - set(_ANY_FAMILY)
                old.update({key: self.params[key] for key in moved})  # counted as untouched: they move
                keep |= restored & set(_ANY_FAMILY)
        return old, keep

    def _note_edits(self, change: dict[str, Any]) -> None:
        """A field changed other than by choosing a model is the user's: model switches leave it alone."""
        if self._rebasing:
            return
        old, new = change["old"] or {}, change["new"] or {}
        self._pinned.update(key for key, value in new.items() if key in FORM_DEFAULTS and value != old.get(key))

    def _msg_load(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        companions = {f["key"]: str(content[field]).strip() for field, f in _BAR_COMPANIONS.items()
                      if str(content.get(field) or "").strip()}
        self.load(str(content.get("source", "")).strip(), content.get("upscaler") or None,
                  companions=companions, prediction=str(content.get("prediction") or "") or None)

    def load(self, source: str, upscaler: str | None = None, *, companions: Mapping[str, str] | None = None,
             prediction: str | None = None) -> threading.Thread:
        """Load `source` (a catalogue name or a path) on a thread, showing download and load progress.

        `companions` are model_config file keys (llm_model_src, vae_model_src, ...) and `prediction`
        the model_config prediction, as the model bar gives them; a catalogue name brings its own
        companions. Loading what is already loaded returns that model (load_model's rule).
        """
        if not source:
            raise InvalidParameterError("model: enter a catalogue name or the path of a model file")
        config = dict(self._model_config)
        config.update(companions or {})
        if prediction and prediction != "auto":
            config["prediction"] = prediction
        if upscaler:
            config["upscaler"] = {**(config.get("upscaler") or {}), "model_src": upscaler}
        with self._lock:
            if self.busy:
                raise UnsupportedOperationError("model: wait for the running job to finish (or cancel it)")
            self.busy = True
        self.error = ""
        self._load_stop = threading.Event()
        self.status = {**idle_status(), "phase": "loading", "kind": "load", "message": f"loading {source}"}
        thread = threading.Thread(target=self._load, args=(source, config), name="qvac_nb-studio-load", daemon=True)
        thread.start()
        return thread

    def _load(self, source: str, config: dict[str, Any]) -> None:
        last = [0.0]

        def progress(info: dict) -> None:
            now = time.monotonic()
            done = float(info.get("percentage") or 0.0) >= 100.0
            if now - last[0] < LOAD_STATUS_INTERVAL_S and not done:
                return
            last[0] = now
            phase = LOAD_PHASES.get(str(info.get("phase")), "loading")
            self.status = {**idle_status(), "phase": phase, "kind": "load", "percent": round(float(
                info.get("percentage") or 0.0), 1), "message": f"{phase} {info.get('role', '')}".strip()}

        try:
            model_id = model_table.load_model_until(self._load_stop, source, model_config=config or None,
                                                    on_progress=progress)
            self.select_model(model_id)
            self.status = {**idle_status(), "phase": "done", "kind": "load", "percent": 100.0,
                           "message": f"loaded {model_id}"}
        except CancelledError:
            self.status = {**idle_status(), "phase": "cancelled", "kind": "load",
                           "message": f"loading {source} was cancelled"}
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            message, field = _load_error(exc)
            self.status = {**idle_status(), "phase": "error", "kind": "load", "message": message, "field": field}
            self._show_error(message)
        finally:
            self.busy = False

    # -- generating --------------------------------------------------------------------------

    def _msg_generate(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if isinstance(content.get("params"), dict):
            self.params = merge_form(self.params, content["params"])
        self.generate()

    def generate(self, **overrides: Any) -> Job:
        """Start a generation with the form's parameters (plus `overrides`); returns its job at once.

        With a video model this runs `video()` (a VideoJob); otherwise `diffusion()`.
        """
        with self._lock:
            try:
                kwargs, _ = self._form_kwargs(overrides)
                is_video = bool(self.form_rules.get("video"))
                job = video(**kwargs) if is_video else diffusion(**kwargs)
            except Exception as exc:
                self._show_error(exc)
                self.status = {**idle_status(), "phase": "error", "message": str(exc)}
                raise
            if is_video:
                self._start(job, "video", seed=job.params["seed"])
            else:
                self._start(job, "diffusion", batch=records.image_count(job.params), seed=job.params["seed"])
        return job

    # -- grids -------------------------------------------------------------------------------

    def _msg_grid(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if isinstance(content.get("params"), dict):
            self.params = merge_form(self.params, content["params"])
        x: Any = content.get("x")  # checked by grid(): a bad axis is shown as the error
        self.grid(x, content.get("y"))

    def grid(self, x: Axis, y: Axis | None = None, **overrides: Any) -> GridRun:
        """Make a parameter grid with the form's parameters (plus `overrides`); returns its thread at once.

        `x` and `y` are (parameter name, [values]) as for `qvac_nb.grid`: seed, cfg_scale, steps,
        sampling_method, scheduler, strength (with an init image), ... or "prompt_sr" (each value
        replaces the first one in the prompt). One image per (x, y) pair, batch count 1; a random
        seed is drawn once for all cells. The cells run one after the other: each joins the gallery
        as it is made, then the labelled grid image does. `cancel()` stops the grid.

        Returns a `GridRun` (a thread): `run.join(timeout)` waits, then `run.png` is the grid's PNG
        and `run.cells` the cells' PNGs. A bad axis or value raises here, before anything runs.
        """
        with self._lock:
            try:
                if self.form_rules.get("video"):
                    raise UnsupportedOperationError("grid: a grid is made of images; the loaded model makes videos "
                                                    "(generate them one at a time)", param="grid")
                base, has_init = self._form_kwargs(overrides)
                run = self._grid.prepare(x, y, base, has_init_image=has_init, made=self._made_by(self.current_model))
            except Exception as exc:
                self._show_error(exc)
                self.status = {**idle_status(), "phase": "error", "kind": "grid", "message": str(exc)}
                raise
            self.busy = True
            self.error = ""
        self.status = {**idle_status(), "phase": "loading", "kind": "grid", "message": "starting the grid",
                       "grid_cell": 1, "grid_cells": len(run.plan.cells)}
        run.start()
        return run

    def _form_kwargs(self, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """`diffusion`'s arguments from the form (plus `overrides`), and whether an init image is set."""
        if overrides:
            self.params = merge_form(self.params, dict(overrides))
        self._check_ready()
        model_id = self.current_model
        # An init image the form does not show (the model takes none, e.g. a text-to-video model) is not sent.
        init = self._fitted_init() if self.form_rules.get("init_label") else None
        kwargs = diffusion_kwargs(self.params, model_id, init, can_upscale(model_id), self.form_rules)
        kwargs.update(self._inputs.params(has_init_image=init is not None))
        return kwargs, init is not None

    def _check_ready(self) -> None:
        if self.busy:
            raise UnsupportedOperationError("generate: a job is already running; wait for it or cancel it")
        if not self.current_model:
            raise InvalidParameterError("model: load a model first (a catalogue name or a file path)")

    def _start(self, job: Job, kind: str, batch: int = 1, seed: int | None = None,
               source: Mapping[str, Any] | None = None) -> None:
        """Follow `job`; its outputs join the gallery. `source`: the gallery entry an upscale was made from."""
        self._job = job
        self.busy = True
        self.error = ""
        extra = {"kind": kind, "seed": seed}
        # An upscale keeps its source's record: the entry says what made that (model, family, what applied).
        made = self._made_by(job.model_id) if source is None else _made_like(source)

        def done(outputs: list[Any], _stats: Any) -> None:
            if kind == "video":
                kept = [self._keep_video(clip, made) for clip in outputs]
                with self._lock:
                    self.gallery = kept + list(self.gallery)
            else:
                self._add_images(outputs, kind=kind, made=made, source=source["id"] if source else None)

        follow_job(job, self._set_status, done, on_preview=self._send_preview, on_finish=self._end_job, batch=batch,
                   extra=extra)

    def _add_images(self, pngs: list[bytes], *, kind: str, made: Mapping[str, Any], source: str | None = None,
                    extra: Mapping[str, Any] | None = None) -> None:
        """Save one job's images and list them first in the gallery, in their own order."""
        # Saved last image first: the folder's newest-first order then lists a batch in its own order,
        # as this gallery does, so a Studio built from the folder later shows the same sequence.
        kept = [self._keep(png, kind=kind, made=made, source=source, extra=extra) for png in reversed(pngs)]
        with self._lock:
            self.gallery = kept[::-1] + list(self.gallery)

    def _set_job(self, job: Job) -> None:
        """A grid's running cell: Cancel cancels it."""
        self._job = job

    def _end_job(self, final: dict[str, Any]) -> None:
        """The job (or grid) is over: the Studio is free again, and a failure shows as its error."""
        with self._lock:
            self._job = None
            self.busy = False
        if final.get("phase") == "error":
            self.error = final["message"]

    def _set_status(self, status: dict[str, Any]) -> None:
        self.status = status

    def _send_preview(self, tick: ProgressTick) -> None:
        # A message, not state: previews are transient and must not land in the saved notebook.
        self.send({"type": "preview", "step": tick.step, "total": tick.total_steps, "image_index": tick.image_index},
                  buffers=[tick.preview])

    def clear_error(self) -> None:
        """Dismiss the error; a status still saying "error" goes back to ready."""
        self.error = ""
        if self.status.get("phase") == "error" and not self.busy:
            self.status = idle_status()

    def cancel(self) -> None:
        """Stop the running job (it stops within a step), the grid under way, or the model being loaded."""
        self._load_stop.set()
        self._grid.cancel()  # before reading the job: a grid starting its next cell then sees it
        job = self._job
        if job is not None:
            job.cancel()

    @property
    def job(self) -> Job | None:
        """The running job, if any."""
        return self._job

    def _entries(self) -> list[dict[str, Any]]:
        return list(self.gallery)

    def _listing_trait(self) -> str:
        return "gallery"

    def _static_note(self) -> str:
        where = f"; every image is saved in {_shown_folder(self.output_dir)}" if self.output_dir else ""
        return f"the newest images of the session{where}"

    @property
    def images(self) -> list[bytes]:
        """Every image of the session as PNG bytes, newest first (a video's first frame for a video)."""
        return [png for entry in self.gallery if (png := self._store.get(entry["id"])) is not None]

    @property
    def videos(self) -> list[bytes]:
        """Every video of the session (and of its history folder) as its MP4 or WebP file's bytes, newest first."""
        return [data for entry in self.gallery if entry.get("video") and (data := self._store.get(entry["video"]))]

    # -- the init image ----------------------------------------------------------------------

    def _msg_init_image(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        if not buffers:
            raise InvalidParameterError("init_image: the upload carried no file")
        self.set_init_image(buffers[0], str(content.get("name") or "upload"))

    def set_init_image(self, data: bytes, name: str = "init_image") -> None:
        try:
            thumb, (width, height) = thumbnail(data), image_size(data)
        except Exception:  # noqa: BLE001 - PIL raises several types for bad bytes
            raise InvalidParameterError(f"init_image: {name} is not a PNG or JPEG image") from None
        self._init_png = data
        self._inputs.clear_mask()  # a mask belongs to the image it was painted on
        self.init_image = {"name": name, "thumb": thumb, "width": width, "height": height}
        self._fitted_init()  # says now (not at Generate) if the model needs it resized
        self.error = ""

    def _fitted_init(self) -> bytes | None:
        """The init image as the current model can take it; the widget says when it was resized."""
        if self._init_png is None:
            return None
        png, note = fit_init(self._init_png, self.model_info.get("family", ""))
        if self.init_image and self.init_image.get("note", "") != note:
            self.init_image = {**self.init_image, "note": note}
        return png

    def init_image_size(self) -> tuple[int, int] | None:
        """The init image's size, which a painted mask must have (InputsHost)."""
        return (self.init_image["width"], self.init_image["height"]) if self.init_image else None

    def clear_init_image(self) -> None:
        self._init_png = None
        self._inputs.clear_mask()
        self.init_image = {}

    # -- gallery actions ---------------------------------------------------------------------

    def _entry(self, image_id: str) -> dict[str, Any]:
        for entry in self.gallery:
            if entry["id"] == image_id:
                return entry
        raise InvalidParameterError(f"gallery: no image '{image_id}' in this session")

    def reuse(self, image_id: str, *, seed_only: bool = False) -> None:
        """Put an image's seed (or all its parameters) back into the form; for a grid sheet (all only), its base
        parameters, and its axes into the Grid section."""
        entry = self._entry(image_id)
        if entry.get("kind") == "grid" and not seed_only:
            # A sheet's "All": its base parameters (seed fixed: the grid comes out the same), its axes to the
            # Grid section.
            base, axes_message = sheet_reuse(entry)
            self.params = form_from_record(self.params, base, REUSABLE)
            self.send(axes_message)
            self.error = ""
            return
        if entry.get("seed") is None:
            raise InvalidParameterError("gallery: this image carries no generation parameters")
        self.params = form_from_record(self.params, entry["params"], ("seed",) if seed_only else REUSABLE)
        self.error = ""

    def use_as_init(self, image_id: str) -> None:
        self._entry(image_id)
        png = self._store.get(image_id)
        assert png is not None  # every gallery entry has its PNG in the store
        self.set_init_image(png, f"{image_id}.png")

    def upscale(self, image_id: str) -> Job:
        """Upscale a gallery image with the model's upscaler; the result joins the gallery."""
        with self._lock:
            try:
                source = self._entry(image_id)
                self._check_ready()
                if not can_upscale(self.current_model):
                    raise UnsupportedOperationError("upscale: the model was loaded without an upscaler")
                png = self._store.get(image_id)
                assert png is not None
                job = upscale_image(self.current_model, png, int(self.params.get("upscale_repeats") or 1))
            except Exception as exc:
                self._show_error(exc)
                raise
            self._start(job, "upscale", source=source)
        return job


def _entry_facts(made: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A new entry's keys from `Studio._made_by`: model, family, seed policy, and `unused`, the parameters of
    its record the form hid for the model (cfg for a guidance model, a Wan 2.1 video's high-noise settings)."""
    facts = {"model": made["model"], "family": made["family"]}
    if made.get("random_seed") is not None:
        facts["random_seed"] = made["random_seed"]
    unused = sorted(key for key in params if key in made["hidden"])
    if unused:
        facts["unused"] = unused
    return facts


def _made_like(source: Mapping[str, Any]) -> dict[str, Any]:
    """`Studio._made_by` for an image made from a gallery entry's (an upscale, which keeps its record)."""
    return {"model": str(source.get("model") or ""), "family": str(source.get("family") or ""),
            "random_seed": source.get("random_seed"), "hidden": frozenset(source.get("unused") or ())}


def _load_error(exc: BaseException) -> tuple[str, str]:
    """A load error as the model bar shows it, and the companion field it is about ("" if none).

    The loader names the model_config key ("model_config.vae_model_src: ..."); the Studio's user
    fills a field of the model bar, so the message names that field too.
    """
    message = str(exc) or type(exc).__name__
    key = str(getattr(exc, "param", None) or "").removeprefix("model_config.")
    field = _BY_KEY.get(key)
    if field is None:
        return message, ""
    return (f"{message} — fill the model bar's '{field['label']}' field (under 'Companions & prediction'; "
            f"model_config['{key}'])", field["field"])


def _output_folder(output_dir: Any) -> Path | None:
    """The Studio's history folder as an absolute path (fixed now: a later chdir does not move it), or None."""
    if output_dir is None:
        return None
    folder = history_folder.folder_path(None if output_dir is _DEFAULT_FOLDER else output_dir)
    try:  # checked now: finding out at the first save would throw that image away
        return check_writable_folder("output_dir", folder).resolve()
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{exc}; pass another output_dir, or output_dir=None to keep the images "
                                    "for this session only", param="output_dir") from None


def _shown_folder(folder: str) -> str:
    """The history folder as a saved notebook names it: relative to the working folder, else its name only
    (a notebook people share carries no local path)."""
    path = Path(folder)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return path.name


def _identity_of(model_id: str) -> tuple[Any, ...] | None:
    """What makes two loads the same model for the Studio: its files and its config."""
    try:
        model = model_table.get_model(model_id)
    except QvacError:
        return None
    files = sorted((role, str(path)) for role, path in model.files.items())
    return model.mode, tuple(files), repr(sorted(model.config.items()))


def _follow_model_table(studio: Studio) -> None:
    """Tell `studio` about loads and unloads for as long as it exists (a weak reference: no leak)."""
    ref = weakref.ref(studio)

    def listener(event: str, model_id: str) -> None:
        target = ref()
        if target is None:
            model_table.remove_listener(listener)
        else:
            target._on_models_changed(event, model_id)

    model_table.add_listener(listener)
