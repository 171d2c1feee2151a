"""`qvac-nb`: the plain API from a shell.

    qvac-nb generate "a lighthouse at dusk" --model SD_V2_1_1B_Q8_0 -o out.png
    qvac-nb upscale photo.jpg -o photo-x4.png --model REALESRGAN_X4PLUS
    qvac-nb batch prompts.txt --model SD_V2_1_1B_Q8_0 -o out/ --workers 2 [--ray ADDRESS]
    qvac-nb convert model.safetensors model-q8_0.gguf --type q8_0
    qvac-nb models [--delete NAME]
    qvac-nb info

Exit codes: 0 success, 2 bad arguments (the message says which and why), 1 engine,
download or other failures (for `batch`: any item failed), 130 when interrupted with Ctrl-C (the job
is cancelled first).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import importlib.metadata
import json
import os
import re
import stat
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import loras, schema
from .checks import tables
from .checks.values import check_writable_file, check_writable_folder
from .errors import UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_MODEL = "SD_V2_1_1B_Q8_0"
DEFAULT_UPSCALER = "REALESRGAN_X4PLUS"
ENGINE_PACKAGE = "stable-diffusion-cpp-python"  # the engine's pinned PyPI package (pyproject.toml)
CANCEL_WAIT_S = 30.0  # how long Ctrl-C waits for the engine to stop before leaving anyway
_BACKEND_SYMBOLS = {
    "CUDA": "ggml_backend_cuda_init",
    "Metal": "ggml_backend_metal_init",
    "Vulkan": "ggml_backend_vk_init",
    "SYCL": "ggml_backend_sycl_init",
}


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its messages but prefix them like ours."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"qvac-nb: error: {message}\n")


def _flags(p: Any) -> tuple[str, ...]:
    return p.cli or (f"--{p.name.replace('_', '-')}",)


def _add_params(group: Any, params: Iterable[Any]) -> None:
    """One flag per schema parameter that has one; help text and defaults come from the schema."""
    for p in params:
        if p.cli is None:
            continue
        kwargs: dict[str, Any] = {"dest": p.name, "help": _help(p)}
        if p.type == "bool":  # --flag / --no-flag; unset leaves the schema's default
            kwargs.update(action=argparse.BooleanOptionalAction, default=None)
        elif p.type == "lora":  # repeatable: --lora a.safetensors --lora b.safetensors:0.5
            kwargs.update(action="append", type=loras.parse_cli, metavar=p.cli_metavar)
        elif p.type == "images":  # repeatable: --ref-image a.png --ref-image b.png
            kwargs.update(action="append", type=str, metavar=p.cli_metavar)
        elif p.type == "hires":
            kwargs.update(type=_hires_arg, metavar=p.cli_metavar)
        else:
            kwargs["type"] = {"int": int, "float": float}.get(p.type, str)
            # Named after the flag, not the API's parameter: --sampler NAME's value is a SAMPLER.
            kwargs["metavar"] = p.cli_metavar or _long_flag(p).lstrip("-").replace("-", "_").upper()
        group.add_argument(*_flags(p), **kwargs)


_HIRES_OFF = ("off", "false", "0")
_HIRES_EXPECTED = "expected 'on', 'off' or a JSON object such as '{\"scale\": 1.5}'"


def _hires_arg(text: str) -> Any:
    """--hires on (the defaults), off, or a JSON object of hires keys, e.g. '{"scale": 1.5, "steps": 10}'."""
    word = text.strip().lower()
    if word in ("on", "true", "1"):
        return True
    if word in _HIRES_OFF:
        return None  # the default: no second pass
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_HIRES_EXPECTED) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(_HIRES_EXPECTED)
    return value


def _given(args: argparse.Namespace, params: Iterable[Any]) -> dict[str, Any]:
    """The parameters whose flags were given (positional arguments such as the prompt are passed on their own)."""
    flagged = (p.name for p in params if p.cli is not None)
    return {name: getattr(args, name) for name in flagged if getattr(args, name, None) is not None}


def _long_flag(p: Any) -> str:
    return next((f for f in _flags(p) if f.startswith("--")), _flags(p)[0])


_FLAG_WORDS = ("sigmas",)  # one-word parameter names the docs use only as names


@functools.cache
def _flag_of() -> dict[str, str]:
    """The flag of every schema parameter that has one, by parameter name (names with an underscore, and
    _FLAG_WORDS: other single words such as 'steps' also read as plain words in the docs)."""
    from .video_schema import VIDEO

    flags: dict[str, str] = {}
    for table in (schema.DIFFUSION, schema.MODEL_CONFIG, schema.UPSCALE, VIDEO):
        for p in table:
            if p.cli is not None and ("_" in p.name or p.name in _FLAG_WORDS):
                flags.setdefault(p.name, _long_flag(p))
    return flags


@functools.cache
def _flag_pattern() -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(sorted(map(re.escape, _flag_of()), key=len, reverse=True)) + r")\b")


def _cli_words(text: str) -> str:
    """API wording as CLI wording: parameter names become their flags ("when vae_tiling is on" -> "when
    --vae-tiling is on"); the API's None alternative is not a command-line value."""
    flags = _flag_of()
    return _flag_pattern().sub(lambda m: flags[m.group(1)], text.replace(" (or None)", ""))


def _hires_keys_text() -> str:
    """Every key --hires takes in its JSON object, with its values and default."""
    return "; ".join(f"{h.name}: {h.values_text()}, default {_default_value(h.default_text())}"
                     for h in schema.HIRES)


# Parameters whose doc (and values) speak of Python objects: their CLI wording, as (doc, values); values None:
# the schema's own.
_CLI_DOC: dict[str, tuple[str, str | None]] = {
    "init_images": ("FLUX.2 reference image (PNG/JPEG), fused with the others in one generation; instead of "
                    "--init-image, not with it", f"repeat for 1-{schema.MAX_REF_IMAGES} images"),
    "auto_resize_ref_image": ("FLUX.2 references: resize each to about the output's area before encoding "
                              "(--no-auto-resize-ref-image encodes them at their own size)", ""),
    "skip_layers": ("blocks the skip-layer guidance pass leaves out, counted from 0 (SD3: its joint blocks; FLUX: "
                    "the double blocks, then the single blocks). Read only when --slg-scale is not 0",
                    f"comma-separated block indices 0-{schema.MAX_LAYER} within the model's depth"),
    "skip_layer_start": ("where skip-layer guidance starts, as a fraction of the steps: step s of n runs it when "
                         "start x (n + 1) < s < end x (n + 1), both products rounded down, with start and end the "
                         "values of --skip-layer-start and --skip-layer-end. Read only when --slg-scale is not 0",
                         None),
    "sigmas": ("custom noise schedule in place of the scheduler's: --steps + 1 noise levels from the first down to "
               "the last (usually 0), e.g. 14.6,7.8,3.5,0 for 3 steps of an SD model; a flow model's levels lie "
               "in [0, 1]", f"2-{schema.MAX_STEPS + 1} comma-separated numbers >= 0 that never rise"),
    "end_image": ("last frame (PNG/JPEG) of a first/last-frame video (Wan FLF2V and 2.2 I2V)", ""),
}


_NAMES = ("Wan",)  # capitalised first words that are names, not the start of a sentence


def _cli_doc(p: Any) -> tuple[str, str]:
    if p.name in _CLI_DOC:
        doc, values = _CLI_DOC[p.name]
        return doc, p.values_text() if values is None else values
    if p.type == "hires":
        return ("hires fix, off by default: a second sampling pass at a larger size. 'on' runs it with the "
                "defaults; a JSON object such as '{\"scale\": 1.5, \"steps\": 10}' sets any of these keys (the "
                f"engine's names such as denoising_strength work too): {_hires_keys_text()}", "")
    doc = p.doc.rstrip(".")
    first = doc.split(" ", 1)[0]
    if first[1:].islower() and first not in _NAMES:  # "Sampling steps" -> "sampling steps"; "CPU threads" stays
        doc = doc[0].lower() + doc[1:]
    if p.type in ("path", "str", "text", "image", "bool"):  # a bool's --x / --no-x say its values
        return doc, ""
    return doc, p.values_text()


def _default_value(text: str) -> str:
    """A schema default as the command line spells it: 'auto' -> auto, [7, 8, 9] -> 7,8,9."""
    text = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).replace(" ", ""), text)
    return re.sub(r"^'([^']*)'", r"\1", text)


def _cli_default(p: Any) -> str | None:
    """The default for --help, or None when it goes without saying (no value, an empty text)."""
    if p.type == "bool":
        return "on" if p.default else "off"
    if p.type == "hires":
        return None  # said first in its help: after the list of keys it would read as the last key's
    text = _default_value(p.default_text())
    none = re.fullmatch(r"None \((.*)\)", text)
    if none:  # "None (the sampler's)": what the API's None stands for
        return none.group(1)
    if text in ("None", ""):
        return None
    if text.endswith(")") and " (" in text:  # "7.0 (FLUX.2: 1.0)" -> "7.0; FLUX.2: 1.0", no nested brackets
        head, inner = text[:-1].split(" (", 1)
        return f"{head}{'; ' if p.per_family else ': '}{inner}"
    return text


def _help(p: Any) -> str:
    """The --help text of a schema parameter, in the command line's terms rather than the API's."""
    if p.cli_help:
        return p.cli_help
    doc, values = _cli_doc(p)
    default = _cli_default(p)
    text = _cli_words(f"{doc}{'; ' + values if values else ''}{f' (default {default})' if default else ''}")
    return text.replace("%", "%%")  # argparse %-formats help strings


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qvac-nb", description="Local, private image generation over stable-diffusion.cpp.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and engine logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    gen = sub.add_parser("generate", help="text-to-image or image-to-image", description="Generate images.")
    gen.add_argument("prompt", help="what to draw")
    gen.add_argument("-o", "--output", default="output.png",
                     help="PNG to write (default output.png); batches write output-1.png, output-2.png, ...")
    gen.add_argument("-m", "--model", default=DEFAULT_MODEL,
                     help=f"catalogue name, file path, https URL or hf://owner/repo/file (default {DEFAULT_MODEL})")
    _add_params(gen.add_argument_group("generation"), schema.DIFFUSION)
    u = gen.add_argument_group("upscaling")
    u.add_argument("--upscale", action="store_true", help="upscale each image once with --upscaler (x4)")
    u.add_argument("--upscale-repeats", type=int, metavar="N", help="upscale N times (1-3; 2 gives x16)")
    u.add_argument("--upscaler", metavar="MODEL",
                   help=f"ESRGAN model for --upscale (default {DEFAULT_UPSCALER} when upscaling)")
    u.add_argument("--upscaler-tile-size", type=int, metavar="PX", help="ESRGAN tile size, 16-2048 (default 128)")
    _add_model_config_args(gen, companions=True)

    up = sub.add_parser("upscale", help="upscale a PNG/JPEG with an ESRGAN model", description="Upscale an image.")
    up.add_argument("image", help="PNG or JPEG to upscale")
    up.add_argument("-o", "--output", help="PNG to write (default <image>-upscaled.png next to the input)")
    up.add_argument("-m", "--model", default=DEFAULT_UPSCALER, help=f"ESRGAN model (default {DEFAULT_UPSCALER})")
    _add_params(up, schema.UPSCALE)
    up.add_argument("--tile-size", type=int, metavar="PX", help="tile size, 16-2048 (default 128)")
    _add_model_config_args(up, companions=False)

    _add_video_parser(sub)
    _add_batch_parser(sub)
    _add_convert_parser(sub)

    models = sub.add_parser("models", help="the model catalogue and what is cached where",
                            description="List the catalogue and the cached model files, or delete one.")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.add_argument("--delete", metavar="NAME",
                        help="free a cached model: a catalogue name, hf://owner/repo/path[@revision] or a URL")
    info = sub.add_parser("info", help="engine library, backend, threads, cache folder", description="Show setup.")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _add_video_parser(sub: Any) -> None:
    from .video_schema import VIDEO

    v = sub.add_parser("video", help="text-to-video or image-to-video with a Wan model",
                       description="Generate a video (Wan 2.1 / 2.2) as an MP4 or animated WebP.")
    v.add_argument("prompt", help="what to show")
    v.add_argument("-o", "--output", default="output.mp4",
                   help="MP4 or WebP to write (default output.mp4); its suffix picks the format unless --format")
    v.add_argument("-m", "--model", required=True, help="the Wan diffusion model: file path, https URL or hf://...")
    _add_params(v.add_argument_group("video"), VIDEO)
    _add_model_config_args(v, companions=True)


def _add_batch_parser(sub: Any) -> None:
    b = sub.add_parser(
        "batch", help="many images from a prompts file or a JSONL file of parameters",
        description="Make every item of FILE into a PNG in the output folder, with an index.jsonl (the Studio's "
                    "history format). Items already there are skipped, so re-running resumes an interrupted batch.")
    b.add_argument("items", metavar="FILE",
                   help="prompts.txt: one prompt a line (blank lines and lines starting with # skipped); "
                        "params.jsonl: one JSON object a line, its keys the Python API's generation parameters "
                        "(prompt, seed, steps, ...), or a JSON string: a prompt")
    b.add_argument("-o", "--output-dir", default="qvac_nb_outputs", metavar="DIR",
                   help="folder for the PNGs and index.jsonl (default qvac_nb_outputs)")
    b.add_argument("-m", "--model", default=DEFAULT_MODEL,
                   help=f"catalogue name, file path, https URL or hf://owner/repo/file (default {DEFAULT_MODEL})")
    b.add_argument("--workers", type=int, metavar="N",
                   help="worker processes here (default 1; without --threads, N workers share the cores: each gets "
                        "cores / N engine threads), or Ray actors with --ray (default one per node)")
    b.add_argument("--ray", nargs="?", const="ray", metavar="ADDRESS",
                   help="run on Ray actors: ADDRESS of the cluster ('auto' for the one `ray start` began here, "
                        "ray://HEAD:10001); without ADDRESS, RAY_ADDRESS or a new local cluster")
    params = [p for p in schema.DIFFUSION if p.name != "batch_count"]
    _add_params(b.add_argument_group("defaults for every item (an item's own values win)"), params)
    _add_model_config_args(b, companions=True)


def _add_convert_parser(sub: Any) -> None:
    from .conversion import WEIGHT_TYPES

    c = sub.add_parser(
        "convert", help="write a model with its weights in another type (quantize once, load fast)",
        description="Convert SRC to OUT with weights of --type, as the engine's own converter does: GGUF, or "
                    "safetensors when OUT ends in .safetensors (f32, f16 and bf16 only). OUT appears only once "
                    "the conversion has succeeded.")
    c.add_argument("src", metavar="SRC",
                   help="the model: a .safetensors/.ckpt/.gguf file, catalogue name, https URL or hf://owner/repo/file")
    c.add_argument("out", metavar="OUT", help="the file to write (.gguf; .safetensors for f32/f16/bf16)")
    c.add_argument("-t", "--type", default="q8_0", metavar="TYPE",
                   help=f"weight type (default q8_0): {', '.join(WEIGHT_TYPES)}")
    c.add_argument("--vae", metavar="MODEL", help="a separate VAE file to include in OUT")


# Model-config flags of the upscale command: an ESRGAN model has no companions or prediction.
_UPSCALER_CONFIG_FLAGS = ("threads", "device")


def _add_model_config_args(parser: argparse.ArgumentParser, *, companions: bool) -> None:
    g = parser.add_argument_group("model config")
    wanted = [p for p in schema.MODEL_CONFIG if companions or p.name in _UPSCALER_CONFIG_FLAGS]
    _add_params(g, wanted)
    g.add_argument("--model-config", metavar="JSON",
                   help='other model options as a JSON object of model_config keys, e.g. \'{"flash_attn": true}\'')


# ---------------------------------------------------------------- running


def _model_config(args: argparse.Namespace, upscaler: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.model_config:
        try:
            extra = json.loads(args.model_config)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--model-config: not valid JSON ({exc})") from None
        if not isinstance(extra, dict):
            raise UsageError("--model-config: expected a JSON object like {\"flash_attn\": true}")
        config.update(extra)
    config.update(_given(args, schema.MODEL_CONFIG))
    if upscaler:
        config["upscaler"] = upscaler
    return config


def _bar(quiet: bool) -> Callable[[Any], None]:
    """A progress callback for job ticks that draws one tqdm bar per phase on stderr."""
    from tqdm import tqdm

    state: dict[str, Any] = {"bar": None, "phase": None}

    def update(tick: Any) -> None:
        if quiet:
            return
        key = (tick.phase, tick.total_steps)
        if state["phase"] != key:
            if state["bar"] is not None:
                state["bar"].close()
            state["bar"] = tqdm(total=tick.total_steps, desc=tick.phase, unit="step", file=sys.stderr, leave=False)
            state["phase"] = key
        bar = state["bar"]
        bar.update(max(0, tick.step - bar.n))

    def close(_: Any = None) -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    update.close = close  # type: ignore[attr-defined]
    return update


def _wait(job: Any, quiet: bool) -> list[bytes]:
    """Follow a job's progress on stderr and return its PNGs; Ctrl-C cancels it."""
    bar = _bar(quiet)
    try:
        for tick in job.progress_stream:
            bar(tick)
        return job.outputs.result()
    except KeyboardInterrupt:
        job.cancel()
        try:  # let the engine stop at its next step so it exits cleanly
            job.outputs.exception(timeout=CANCEL_WAIT_S)
        except BaseException:  # noqa: BLE001 - leaving anyway
            pass
        raise
    finally:
        bar.close()  # type: ignore[attr-defined]


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _output_paths(output: str, count: int) -> list[Path]:
    path = Path(output).expanduser()
    if path.suffix.lower() != ".png":
        raise UsageError(f"--output: {output!r} must end in .png (qvac_nb writes PNGs with their parameters)")
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, count + 1)]


def _checked_output(output: str) -> list[Path]:
    """The -o/--output path of one image, once it could be written.

    Checked before the model loads: finding out after generating would lose the images.
    """
    paths = _output_paths(output, 1)
    check_writable_file("-o/--output", paths[0])
    return paths


def _write(paths: Sequence[Path], pngs: Sequence[bytes]) -> None:
    for path, png in zip(paths, pngs, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        print(path)  # stdout: just the files, for scripts


def cmd_generate(args: argparse.Namespace) -> int:
    import qvac_nb

    upscaling = args.upscale or args.upscale_repeats is not None
    if not upscaling and (args.upscaler or args.upscaler_tile_size is not None):
        raise UsageError("--upscaler/--upscaler-tile-size: add --upscale (x4) or --upscale-repeats N to use them")
    upscaler = None
    if upscaling:
        upscaler = {"model_src": args.upscaler or DEFAULT_UPSCALER}
        if args.upscaler_tile_size is not None:
            upscaler["tile_size"] = args.upscaler_tile_size
    config = _model_config(args, upscaler)
    # Unset flags keep the API's defaults.
    kwargs = _given(args, schema.DIFFUSION)
    if args.upscale_repeats is not None:
        kwargs["upscale"] = {"repeats": args.upscale_repeats}  # diffusion() checks the range
    elif args.upscale:
        kwargs["upscale"] = True
    init = kwargs.get("init_image")
    if init is not None and not Path(init).expanduser().is_file():
        raise UsageError(f"--init-image: no image file at {init}")
    _checked_output(args.output)
    _check_before_loading(args.model, {"prompt": args.prompt, **kwargs})

    _say(args, f"loading {args.model} ...")
    model_id = qvac_nb.load_model(args.model, model_config=config)
    try:
        job = qvac_nb.diffusion(model_id=model_id, prompt=args.prompt, **kwargs)
        pngs = _wait(job, args.quiet)
        _write(_output_paths(args.output, len(pngs)), pngs)
        stats = job.stats.result()
        _say(args, f"{len(pngs)} image(s) of {stats.width}x{stats.height}, seed {stats.seed}, "
                   f"{stats.generation_ms / 1000:.1f} s")
    finally:
        qvac_nb.unload_model(model_id=model_id)
    return EXIT_OK


def _check_before_loading(model_src: str, params: dict[str, Any]) -> None:
    """Refuse bad values before a model of several GB loads (or downloads): every check that needs no loaded
    model, with the family's size rule where the catalogue or the file's header tells the family."""
    from . import engine
    from .batching.items import model_family
    from .catalog import CATALOG
    from .checks import guards

    family = model_family(model_src) if model_src in CATALOG or Path(model_src).expanduser().is_file() else None
    values = tables.validate(schema.DIFFUSION, params, where="diffusion", names=engine.enum_names(), family=family)
    if family is not None:
        guards.check_size(family, values)


def cmd_video(args: argparse.Namespace) -> int:
    import qvac_nb

    from .video_schema import OUTPUT_FORMATS, VIDEO

    output = Path(args.output).expanduser()
    suffix = output.suffix.lower().lstrip(".")
    if suffix not in OUTPUT_FORMATS:
        raise UsageError(f"--output: {args.output!r} must end in .mp4 or .webp")
    kwargs = _given(args, VIDEO)
    kwargs.setdefault("output_format", suffix)
    for name in ("init_image", "end_image"):
        if kwargs.get(name) is not None and not Path(kwargs[name]).expanduser().is_file():
            raise UsageError(f"--{name.replace('_', '-')}: no image file at {kwargs[name]}")
    check_writable_file("-o/--output", output)
    config = {**_model_config(args), "mode": "video"}
    _say(args, f"loading {args.model} ...")
    model_id = qvac_nb.load_model(args.model, model_config=config)
    try:
        job = qvac_nb.video(model_id=model_id, prompt=args.prompt, **kwargs)
        (clip,) = _wait(job, args.quiet)
        _write([output], [clip])
        stats = job.stats.result()
        _say(args, f"{stats.total_frames} frames of {stats.width}x{stats.height} at {stats.fps} fps, "
                   f"seed {stats.seed}, {stats.generation_ms / 1000:.1f} s")
    finally:
        qvac_nb.unload_model(model_id=model_id)
    return EXIT_OK


def cmd_upscale(args: argparse.Namespace) -> int:
    import qvac_nb

    source = Path(args.image).expanduser()
    if not source.is_file():
        raise UsageError(f"image: no file at {args.image}")
    output = args.output or str(source.with_name(f"{source.stem}-upscaled.png"))
    paths = _checked_output(output)
    upscaler = {"tile_size": args.tile_size} if args.tile_size is not None else None
    config = _model_config(args, upscaler)
    _say(args, f"loading {args.model} ...")
    model_id = qvac_nb.load_model(args.model, model_type="upscale", model_config=config)
    try:
        kwargs = _given(args, schema.UPSCALE)
        # Bytes rather than the path: upscale() then carries a qvac_nb PNG's parameters over.
        job = qvac_nb.upscale(model_id=model_id, image=source.read_bytes(), **kwargs)
        pngs = _wait(job, args.quiet)
        _write(paths, pngs)
        stats = job.stats.result()
        _say(args, f"{stats.width}x{stats.height} in {stats.generation_ms / 1000:.1f} s")
    finally:
        qvac_nb.unload_model(model_id=model_id)
    return EXIT_OK


def read_items(path: str) -> list[Any]:
    """The items of a prompts file (one prompt a line) or a JSONL file (one object or string a line)."""
    source = Path(path).expanduser()
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"items: cannot read {path} ({exc})") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    if source.suffix.lower() not in (".jsonl", ".ndjson"):
        return [line for _, line in lines if line and not line.startswith("#")]
    items = []
    for n, line in lines:
        if not line:
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"items: {path} line {n} is not JSON ({exc})") from None
        if not isinstance(item, (dict, str)):
            raise UsageError(f"items: {path} line {n}: expected an object of parameters or a prompt string")
        items.append(item)
    return items


def cmd_batch(args: argparse.Namespace) -> int:
    import qvac_nb

    items = read_items(args.items)
    check_writable_folder("-o/--output-dir", args.output_dir)  # before any work, as for --output
    config = _model_config(args)
    try:
        result = qvac_nb.batch(items, model_src=args.model, model_config=config, output_dir=args.output_dir,
                               cluster=args.ray, workers=args.workers, progress=not args.quiet,
                               **_given(args, schema.DIFFUSION))
    except ImportError as exc:  # --ray without Ray installed
        raise UsageError(f"--ray: {exc}") from None
    assert isinstance(result, qvac_nb.BatchResult)
    for record in result:
        if record.status == "ok":
            print(record.path)  # stdout: just the new files, for scripts
        elif record.status == "failed":
            _say(args, f"item {record.index} ({record.prompt[:40]!r}) failed: {record.error}")
    _say(args, f"{len(result.ok)} made, {len(result.skipped)} already done, {len(result.failed)} failed in "
               f"{result.elapsed_s:.1f} s ({result.items_per_s:.2f} images/s) -> {args.output_dir}")
    return EXIT_FAILURE if result.failed else EXIT_OK


def _convert_bar(quiet: bool) -> Callable[[dict[str, Any]], None]:
    """convert()'s on_progress for the terminal: one tqdm bar per phase on stderr."""
    from tqdm import tqdm

    state: dict[str, Any] = {"bar": None, "phase": None}

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    def update(info: dict[str, Any]) -> None:
        if quiet:
            return
        phase = info["phase"]
        if phase == "done":
            close()
            return
        if state["phase"] != phase:
            close()
            total = {"download": info.get("total_bytes"), "convert": info.get("total_steps")}.get(phase)
            unit = "B" if phase == "download" else "tensor" if phase == "convert" else "s"
            state["bar"] = tqdm(total=total, desc=phase, unit=unit, unit_scale=phase == "download",
                                file=sys.stderr, leave=False)
            state["phase"] = phase
        bar = state["bar"]
        done = info.get("downloaded_bytes", info.get("step"))
        if done is None:  # writing: the engine reports nothing, so show the time it has taken
            done = int(info.get("elapsed_ms", 0) / 1000)
        if bar.total is None and info.get("total_steps"):
            bar.total = info["total_steps"]
        bar.update(max(0, done - bar.n))

    update.close = close  # type: ignore[attr-defined]
    return update


def cmd_convert(args: argparse.Namespace) -> int:
    from .conversion import convert

    bar = _convert_bar(args.quiet)
    try:
        out = convert(args.src, args.out, args.type, vae=args.vae, on_progress=bar)
    finally:
        bar.close()  # type: ignore[attr-defined]
    print(out)  # stdout: just the file, for scripts
    _say(args, f"{out.stat().st_size / 1e6:.1f} MB of {args.type} weights")
    return EXIT_OK


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def cmd_models(args: argparse.Namespace) -> int:
    from .catalog import CATALOG
    from .hub.cache import cache_dir, hf_hub_cache
    from .hub.resolve import cached_path, delete_cached, list_cached

    if args.delete:
        return _delete_model(args, delete_cached)
    rows: list[dict[str, Any]] = []
    for entry in CATALOG.values():
        path = cached_path(entry)
        rows.append({"name": entry.name, "family": entry.family, "role": entry.role, "size": entry.size,
                     "cached": str(path) if path else None, "notes": entry.notes})
    others = [{"name": name, "path": str(path), "size": size} for name, path, size in list_cached()
              if name not in CATALOG]
    if args.json:
        print(json.dumps({"cache_dir": str(cache_dir()), "hub_cache": str(hf_hub_cache()), "catalog": rows,
                          "other_cached": others}, indent=2))
        return EXIT_OK
    width = max(len(r["name"]) for r in rows)
    print(f"{'NAME':<{width}}  {'FAMILY':<6}  {'ROLE':<15}  {'SIZE':>8}  CACHED")
    for r in rows:
        cached = "yes" if r["cached"] else "-"
        print(f"{r['name']:<{width}}  {r['family']:<6}  {r['role']:<15}  {_human(r['size']):>8}  {cached}")
    where = [(r["name"], r["cached"], r["size"]) for r in rows if r["cached"]]
    where += [(o["name"], o["path"], o["size"]) for o in others]
    if where:
        print("\ncached files:")
        for name, path, size in where:
            print(f"  {name}  {_human(size)}  {path}")
    print(f"\nhub cache: {hf_hub_cache()} (shared with other Hugging Face tools; `hf cache scan` lists all of it)")
    folder = cache_dir()
    print(f"cache folder: {folder} ({_human(folder_bytes(folder))} used)")
    return EXIT_OK


def folder_bytes(root: Path) -> int:
    """The bytes of every file under `root` (its subfolders too; partial downloads count): what the folder uses.

    Symbolic links are not followed (what they point to lives elsewhere) and a file with several hard
    links counts once. 0 when `root` does not exist.
    """
    total = 0
    seen: set[tuple[int, int]] = set()
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:  # removed while we walk
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _delete_model(args: argparse.Namespace, delete_cached: Callable[[str], bool]) -> int:
    """`qvac-nb models --delete NAME`: free one cached model; exit 1 when nothing of it was cached."""
    from .errors import UnknownModelError

    try:
        deleted = delete_cached(args.delete)
    except UnknownModelError as exc:
        raise UsageError(f"--delete: {exc}") from None
    if args.json:
        print(json.dumps({"deleted": deleted, "name": args.delete}))
    elif deleted:
        print(f"deleted {args.delete}")
    else:
        print(f"{args.delete} is not cached (nothing deleted)", file=sys.stderr)
    return EXIT_OK if deleted else EXIT_FAILURE


def _open_library(library: str) -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(library)
    except OSError:
        return None


def _backends(lib: ctypes.CDLL | None) -> list[str]:
    """The GPU backends compiled into the engine library (none for a CPU build)."""
    return [name for name, symbol in _BACKEND_SYMBOLS.items() if lib is not None and hasattr(lib, symbol)]


def _recorded(value: object) -> str | None:
    """A version or commit the engine build reports, or None when its build left the placeholder."""
    text = str(value or "").strip()
    return None if text.lower() in ("", "unknown") else text


def _library_text(lib: ctypes.CDLL | None, symbol: str) -> str | None:
    """What a `const char *f(void)` the library exports returns (ggml_version), or None."""
    function = getattr(lib, symbol, None) if lib is not None else None
    if function is None:
        return None
    function.restype, function.argtypes = ctypes.c_char_p, []
    raw = function()
    return _recorded(raw.decode("utf-8", "replace")) if raw else None


def _engine_package() -> str | None:
    """The pinned engine package and its installed version, e.g. 'stable-diffusion-cpp-python 0.4.7'."""
    try:
        return f"{ENGINE_PACKAGE} {importlib.metadata.version(ENGINE_PACKAGE)}"
    except importlib.metadata.PackageNotFoundError:
        return None


NOT_RECORDED = "not recorded by the engine build"


def cmd_info(args: argparse.Namespace) -> int:
    import qvac_nb

    from . import engine
    from .hub.cache import cache_dir

    details = engine.info()
    lib = _open_library(str(details["path"]))
    system = str(details.get("system_info", "")).replace("System Info:", "").split("|")
    features = [f.split("=")[0].strip() for f in system if f.strip().endswith("= 1")]
    override = os.environ.get(engine.LIBRARY_ENV)
    package = _engine_package()
    if package and override:  # the package is installed, but the library in use is another build
        package += f" (not in use: {engine.LIBRARY_ENV} is set)"
    folder = cache_dir()
    # None (JSON null) for what the build does not record; the text says so in words.
    report: dict[str, Any] = {
        "qvac_nb": qvac_nb.__version__,
        "engine package": package,
        "engine library": details["path"],
        "engine version": _recorded(details.get("version")),
        "engine commit": _recorded(details.get("commit")),
        "ggml version": _library_text(lib, "ggml_version"),
        "backend": "+".join(_backends(lib) + ["CPU"]),
        "library override": override or "(none)",
        "threads (default)": details["physical_cores"],
        "cpu features": " ".join(features),
        "cache folder": str(folder),
        "cache folder bytes": folder_bytes(folder),
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    shown = {key: value for key, value in report.items() if key != "cache folder bytes"}
    shown["cache folder"] = f"{folder} ({_human(report['cache folder bytes'])} used)"
    if package is None:
        shown["engine package"] = f"{ENGINE_PACKAGE} is not installed"
    width = max(map(len, shown))
    for key, value in shown.items():
        print(f"{key + ':':<{width + 1}} {NOT_RECORDED if value is None else value}")
    return EXIT_OK


COMMANDS = {"generate": cmd_generate, "video": cmd_video, "upscale": cmd_upscale, "batch": cmd_batch,
            "convert": cmd_convert, "models": cmd_models, "info": cmd_info}


def _fail(code: int, message: str) -> int:
    print(f"qvac-nb: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")

    from . import _engine
    from .errors import CancelledError, DownloadError, EngineError, EngineLibraryError, QvacError

    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\nqvac-nb: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CancelledError as exc:
        return _fail(EXIT_INTERRUPTED, str(exc))
    except (EngineError, DownloadError, EngineLibraryError, _engine.EngineError) as exc:
        if args.debug:
            traceback.print_exc()
        return _fail(EXIT_FAILURE, str(exc))
    except QvacError as exc:
        if args.debug:
            traceback.print_exc()
        return _fail(EXIT_USAGE, str(exc))
    except Exception:  # a bug: show everything
        traceback.print_exc()
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
