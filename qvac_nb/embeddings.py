"""`load_model(model_config={"embeddings": ...})`: textual-inversion embeddings.

The engine takes embeddings when it loads a model (SD 1.x, 2.x and XL, whose text encoders are
CLIP), each under a name; a prompt then uses one by writing its name, e.g. "a portrait, my-style".
It matches a name anywhere in the lower-cased prompt, so a name should be a word that does not occur
by chance ("sks-style" rather than "style").

Accepted values (every source resolves like `model_src`: a local path, a catalogue constant, an
https URL or hf://owner/repo/file):

- a source, or a list of sources: each named after its file (`my-style.safetensors` -> "my-style");
- a `{name: source}` dict.

Validation keeps `{name: source}`; `resolve` fetches and checks the files when the model loads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .checks.values import check_path
from .errors import CorruptModelError, InvalidParameterError, InvalidTypeError, UnsupportedOperationError

PARAM = "model_config.embeddings"
MAX_EMBEDDINGS = 64
VALUES_DOC = "a source or a list of sources (each named after its file stem), or a {name: source} dict"
# Width of the token vectors each family's text encoders read: CLIP ViT-L (768), OpenCLIP ViT-H (1024),
# and SDXL's two (ViT-L and bigG, 1280). The engine loads every tensor of one of these widths.
TEXT_WIDTHS: dict[str, tuple[int, ...]] = {"sd1": (768,), "sd2": (1024,), "sdxl": (768, 1280)}


def _fail(message: str, kind: type[Exception] = InvalidParameterError) -> Exception:
    return kind(f"{PARAM}: {message}", param=PARAM)  # type: ignore[call-arg]


def _is_source(value: Any) -> bool:
    return isinstance(value, (str, bytes, os.PathLike))


def _stem(source: str) -> str:
    # A URL or hf:// source names its file last, as a path does.
    name = source.rstrip("/").rsplit("/", 1)[-1].split("@", 1)[0]
    return Path(name).stem if name else ""


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str):
        raise _fail(f"{where}: a name must be a string, got {type(name).__name__}", InvalidTypeError)
    if not name or any(c.isspace() for c in name) or "\x00" in name:
        raise _fail(f"{where}: {name!r} is not usable as a prompt word; use a name without spaces")
    try:
        name.encode("utf-8")  # prompts reach the engine as UTF-8; a file name's undecodable bytes cannot match
    except UnicodeEncodeError:
        raise _fail(f"{where}: {name!r} is not text a prompt can contain; name it with a {{name: source}} dict") \
            from None
    return name


def check(value: Any) -> dict[str, str] | None:
    """The validated `embeddings` value: `{name: source}` in the given order (None or empty: none).

    Names are compared without case (the engine lower-cases them and the prompt); the same name twice
    is refused, since only one of the files could be used.
    """
    if value is None:
        return None
    if _is_source(value):
        value = [value]
    if isinstance(value, Mapping):
        pairs = [(_check_name(name, f"entry {name!r}"), src) for name, src in value.items()]
    elif isinstance(value, Sequence):
        pairs = []
        for i, src in enumerate(value):
            if not _is_source(src):
                raise _fail(f"entry {i}: expected a source (path, catalogue name or URL), got {type(src).__name__}",
                            InvalidTypeError)
            checked = check_path(PARAM, src) or ""
            pairs.append((_check_name(_stem(checked), f"entry {i} ({checked!r})"), src))
    else:
        raise _fail(f"expected {VALUES_DOC}, got {type(value).__name__}", InvalidTypeError)
    if len(pairs) > MAX_EMBEDDINGS:
        raise _fail(f"at most {MAX_EMBEDDINGS} embeddings, got {len(pairs)}")
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, raw_src in pairs:
        src = check_path(f"{PARAM}.{name}", raw_src)
        if not src:
            raise _fail(f"{name!r}: the source is empty")
        folded = name.lower()
        if folded in seen:
            raise _fail(f"the name {name!r} is given twice (as {seen[folded]!r} too); rename one "
                        "(a {name: source} dict sets the names)")
        seen[folded] = name
        out[name] = src
    return out or None


def check_file(path: Path, name: str, family: str) -> None:
    """Refuse an embedding file the engine would misread, before the engine opens it.

    Its headers are bounds-checked (a malformed file crashes the engine's loader) and its tensors must
    be float32 vectors of the model's text width: the engine copies the bytes into a float32 table
    whatever their type, so a float16 file would be read past its end.
    """
    from .modelfiles.formats import _parse
    from .modelfiles.reading import check_regular_file

    where = f"{PARAM}.{name}"
    check_regular_file(path, where)
    try:
        info = _parse(path, where)
    except CorruptModelError as exc:
        message = str(exc)
        raise CorruptModelError(message if message.startswith(f"{where}:") else f"{where}: {message}",
                                param=PARAM) from None
    widths = TEXT_WIDTHS[family]
    vectors = {n: shape for n, shape in info.tensors.items() if shape and shape[-1] in widths and len(shape) <= 2}
    if not vectors:
        shapes = ", ".join(f"{n} {list(s)}" for n, s in list(info.tensors.items())[:4])
        raise UnsupportedOperationError(
            f"{where}: {path.name} holds no token vectors {' or '.join(map(str, widths))} wide, which this model's "
            f"text encoder reads (it has {shapes or 'no tensors'}); it is an embedding for another model family",
            param=PARAM)
    others = sorted(set(info.tensors) - set(vectors))
    if others:
        raise UnsupportedOperationError(
            f"{where}: {path.name} is not a textual-inversion embedding: {others[0]} {list(info.tensors[others[0]])} "
            f"is not a token vector {' or '.join(map(str, widths))} wide", param=PARAM)
    wrong = sorted(n for n in vectors if info.dtypes.get(n, "F32") != "F32")
    if wrong:
        raise UnsupportedOperationError(
            f"{where}: {path.name} stores {wrong[0]} as {info.dtypes[wrong[0]]}; the engine reads embeddings only "
            "as float32 (convert the file's tensors to float32)", param=PARAM)


def resolve(embeddings: Mapping[str, str] | None, family: str, family_label: str,
            fetch: Callable[[str, str], Path]) -> dict[str, Path]:
    """`{name: local file}` for a model of `family`, each file fetched with `fetch(source, role)` and checked."""
    if not embeddings:
        return {}
    if family not in TEXT_WIDTHS:
        raise UnsupportedOperationError(
            f"{PARAM}: {family_label} models do not read textual-inversion embeddings (SD 1.x, 2.x and XL do)",
            param=PARAM)
    out: dict[str, Path] = {}
    for name, src in embeddings.items():
        path = fetch(src, f"{PARAM}.{name}")
        check_file(path, name, family)
        out[name] = path
    return out
