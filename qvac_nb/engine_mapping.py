"""From a validated request (or a model_config dict) to the engine's own fields.

Most parameters name the engine attribute they fill (`Param.engine`) and are copied as they are; the
few the engine takes in another form (enum indices, the hires block, flags) convert here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from . import cache_presets
from .request_types import DiffusionRequest
from .schema import CPU_FLAGS, DIFFUSION, HIRES_UPSCALERS, PREDICTION_ALIASES, Param

# What is mapped: a validated request, or a model_config dict.
Source: TypeAlias = DiffusionRequest | Mapping[str, Any]
EnumNames: TypeAlias = Mapping[str, Sequence[str]]
Converter: TypeAlias = Callable[[Any, EnumNames, Source], dict[str, Any]]


def _engine_enum(enum: str) -> Converter:
    def convert(value: Any, names: EnumNames, _request: Source) -> dict[str, Any]:
        return {} if value is None else {enum: list(names[enum]).index(value)}

    return convert


def _hires_engine(value: Mapping[str, Any], _names: EnumNames, _request: Source) -> dict[str, Any]:
    return {"hires": True, "hires_upscaler": HIRES_UPSCALERS.index(value["upscaler"]), "hires_scale": value["scale"],
            "hires_width": value["width"], "hires_height": value["height"], "hires_steps": value["steps"],
            "hires_strength": value["strength"], "hires_tile_size": value["tile_size"]}


def _img_cfg_engine(value: float, _names: EnumNames, _request: Source) -> dict[str, Any]:
    return {} if value == -1 else {"img_cfg_scale": value}  # unset: the engine reuses cfg_scale


def _threads(value: int, _names: EnumNames, _request: Source) -> dict[str, Any]:
    from . import engine  # the core count comes from the engine library

    return {"threads": engine.resolve_threads(value)}


def _prediction(value: str, names: EnumNames, _request: Source) -> dict[str, Any]:
    if value == "auto":
        return {}
    return {"prediction": list(names["prediction"]).index(PREDICTION_ALIASES.get(value, value))}


def _device(value: str, _names: EnumNames, _request: Source) -> dict[str, Any]:
    return dict.fromkeys(CPU_FLAGS, True) if value == "cpu" else {}


def _flag(engine_attr: str) -> Converter:
    return lambda value, _names, _request: {engine_attr: bool(value)}


# Custom engine conversions; every other engine-mapped parameter is copied as is.
def _cache_preset(value: str | None, _names: EnumNames, request: Source) -> dict[str, Any]:
    family = request["family"] if isinstance(request, Mapping) else request.family
    return cache_presets.engine_fields(value, family) if value else {}


_TO_ENGINE: dict[str, Converter] = {
    "sampling_method": _engine_enum("sample_method"),
    "scheduler": _engine_enum("scheduler"),
    "cache_preset": _cache_preset,
    "threads": _threads,
    "prediction": _prediction,
    "type": lambda value, names, _r: {"weight_type": list(names["type"]).index(value)},
    "rng": _engine_enum("rng"),
    "sampler_rng": lambda value, names, _r: {"sampler_rng": list(names["rng"]).index(value)},
    "lora_apply_mode": _engine_enum("lora_apply_mode"),
    "diffusion_fa": _flag("diffusion_flash_attn"),
    "device": _device,
    "img_cfg_scale": _img_cfg_engine,
    "hires": _hires_engine,
}


def engine_fields(request: Source, params: Sequence[Param] = DIFFUSION,
                  names: EnumNames | None = None) -> dict[str, Any]:
    """`{engine attribute: value}` for a validated request (DiffusionRequest, or a model_config dict)."""
    if names is None:
        from . import engine

        names = engine.enum_names()
    get = request.get if isinstance(request, Mapping) else (lambda key, default=None: getattr(request, key, default))
    out: dict[str, Any] = {}
    for p in params:
        value = get(p.name, None)
        if p.engine is None or p.type in ("path", "image") or value is None:
            continue  # unset: the engine's own default applies; files and images are set by the caller
        convert = _TO_ENGINE.get(p.name)
        if convert is not None:
            out.update(convert(value, names, request))
        elif isinstance(p.engine, tuple):
            out.update(dict.fromkeys(p.engine, value))
        else:
            out[p.engine] = value
    return out


def fill_engine_object(target: Any, fields: Mapping[str, Any]) -> Any:
    for attr, value in fields.items():
        setattr(target, attr, value)
    return target
