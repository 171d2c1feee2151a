"""The docstrings and signatures notebook users read with `?`, written from the parameter tables."""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from . import request_types
from .schema import REQUIRED, Param


def _doc_entry(p: Param, indent: str = "    ") -> str:
    kind = {"text": "str", "choice": "str", "path": "str", "image": "image", "upscale": "bool or dict",
            "upscaler": "dict or str", "images": "list of images", "hires": "bool or dict",
            "lora": "str, list or dict", "embeddings": "str, list or dict", "layers": "list of int",
            "sigmas": "list of float"}.get(p.type, p.type)
    head = f"{p.name} : {kind}" + (" or None" if p.nullable and kind != "image" else "")
    values = p.values_text()
    body = f"{p.doc}{f' Values: {values}.' if values else ''} Default: {p.default_text()}."
    # Not at hyphens: a family label (Qwen-Image-Edit, ERNIE-Image) stays whole for readers and searches.
    return f"{head}\n" + textwrap.fill(body, 100, initial_indent=indent, subsequent_indent=indent,
                                       break_on_hyphens=False)


def docstring(summary: str, params: Sequence[Param], returns: str, *, extra: Sequence[Param] = (),
              extra_doc: str = "", extra_params: Sequence[Param] = ()) -> str:
    """A numpy-style docstring listing every parameter with its type, range and default."""
    lines = [summary, "", "Parameters", "----------"]
    lines += [_doc_entry(p) for p in (*params, *extra)]
    if extra_doc:
        lines.append(extra_doc)
        lines += [_doc_entry(p) for p in extra_params]
    lines += ["", "Returns", "-------", returns]
    return "\n".join(lines)


def signature(params: Sequence[Param], hints: Mapping[str, Any], *, positional: Sequence[str] = (),
              extra: Sequence[inspect.Parameter] = (), returns: Any = inspect.Signature.empty) -> inspect.Signature:
    """The keyword-only signature `inspect`/Jupyter show for a function that takes **kwargs.

    `hints` are the annotations of its kwargs TypedDict (request_types.py); the named arguments the
    TypedDict leaves out (model_id, prompt, image) are text or an image.
    """
    out = []
    for p in params:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if p.name in positional else inspect.Parameter.KEYWORD_ONLY
        default = inspect.Parameter.empty if p.default is REQUIRED else (None if p.per_family else p.default)
        annotation = hints.get(p.name, request_types.ImageInput if p.type == "image" else str)
        out.append(inspect.Parameter(p.name, kind, default=default, annotation=annotation))
    return inspect.Signature([*out, *extra], return_annotation=returns)
