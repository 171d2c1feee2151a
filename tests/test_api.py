"""The plain-function API on the test models: QVAC's end-to-end set plus every parameter."""

from __future__ import annotations

import asyncio
import io
import pickle
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_real_image, pixels
from PIL import Image
from testmodels import registry

import qvac_nb
from qvac_nb import models
from qvac_nb.png import stored_record

# One step at cfg 1 (one U-Net pass): what a test runs unless its point is the step count or cfg (those set them).
SMALL = {"width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0}


def run(model_id: str, **kw: object) -> tuple[list[bytes], qvac_nb.Stats]:
    job = qvac_nb.diffusion(model_id=model_id, prompt=kw.pop("prompt", "a castle"), **{**SMALL, **kw})
    return job.outputs.result(timeout=600), job.stats.result(timeout=600)


# ---------------------------------------------------------------- QVAC's end-to-end set


def test_txt2img(sd1_id: str) -> None:
    (png,), stats = run(sd1_id, seed=1)
    assert_real_image(png, 64, 64)
    assert (stats.width, stats.height, stats.seed, stats.total_images) == (64, 64, 1, 1)


def test_negative_prompt_changes_the_image(sd1_id: str) -> None:
    # cfg above 1: the negative prompt is the unconditional pass (at cfg 1 there is none).
    (a,), _ = run(sd1_id, seed=2, cfg_scale=7.0)
    (b,), _ = run(sd1_id, seed=2, cfg_scale=7.0, negative_prompt="blurry, dark")
    assert not np.array_equal(pixels(a), pixels(b))
    assert qvac_nb.read_parameters(b)["negative_prompt"] == "blurry, dark"


def test_cfg_12_changes_the_image(sd1_id: str) -> None:
    (a,), _ = run(sd1_id, seed=3, cfg_scale=7.0)
    (b,), _ = run(sd1_id, seed=3, cfg_scale=12.0)
    assert not np.array_equal(pixels(a), pixels(b))


@pytest.mark.parametrize("sampler,scheduler", [("euler_a", None), ("heun", None), ("euler", "karras")])
def test_samplers_and_schedulers(sd1_id: str, sampler: str, scheduler: str | None) -> None:
    (png,), _ = run(sd1_id, seed=4, steps=2, sampling_method=sampler, scheduler=scheduler)
    assert_real_image(png, 64, 64)
    stored = qvac_nb.read_parameters(png)
    assert stored["sampling_method"] == sampler
    assert stored["scheduler"] == (scheduler or models.get_model(sd1_id).default_scheduler)


def test_samplers_give_different_images(sd1_id: str) -> None:
    # Two steps: Heun's last step (to sigma 0) is an Euler step, so one step would make the same image.
    outs = [pixels(run(sd1_id, seed=4, steps=2, sampling_method=s)[0][0]) for s in ("euler", "heun")]
    assert not np.array_equal(*outs)


def test_seed_reproducibility_is_byte_identical(sd1_id: str) -> None:
    assert run(sd1_id, seed=77)[0] == run(sd1_id, seed=77)[0]


def test_batch_count_two_uses_seed_and_seed_plus_one(sd1_id: str) -> None:
    (a, b), stats = run(sd1_id, seed=10, batch_count=2)
    assert stats.total_images == 2 and stats.total_pixels == 2 * 64 * 64
    assert [qvac_nb.read_parameters(p)["seed"] for p in (a, b)] == [10, 11]
    (single,), _ = run(sd1_id, seed=11)
    assert np.array_equal(pixels(b), pixels(single))


def test_img2img_at_strength_half(sd1_id: str, picture: Path) -> None:
    src = picture.read_bytes()
    other_src = np.ascontiguousarray(pixels(src)[::-1])  # another init image: the picture upside down
    job = qvac_nb.diffusion(
        model_id=sd1_id, prompt="a castle", seed=6, init_image=src, strength=0.5, **{**SMALL, "steps": 4}
    )
    (img,) = job.outputs.result(timeout=600)
    assert_real_image(img, 64, 64)
    # SDEdit runs only the tail of the schedule (about strength x steps), from the noised init image.
    (sampled,) = {t.total_steps for t in job.progress_stream.ticks if t.phase == "sample"}
    assert 0 < sampled < 4
    (txt,), _ = run(sd1_id, seed=6, steps=4)
    (img2,), _ = run(sd1_id, seed=6, steps=4, init_image=other_src, strength=0.5)
    assert not np.array_equal(pixels(txt), pixels(img)), "the init image had no effect"
    assert not np.array_equal(pixels(img), pixels(img2)), "different init images gave the same output"
    assert qvac_nb.read_parameters(img)["strength"] == 0.5


def test_init_image_forms(sd1_id: str, picture: Path) -> None:
    """PNG bytes, a PIL image, an array and a path are the same init image; JPEG bytes decode to a near copy."""
    src = picture.read_bytes()
    pil = Image.open(io.BytesIO(src))
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, "JPEG")
    forms: dict[str, object] = {"bytes": src, "pil": pil, "array": np.asarray(pil.convert("RGB")),
                                "path": picture, "jpeg": buf.getvalue()}
    # Two steps at strength 0.4: one step from the schedule's second sigma, where the init image shapes the
    # output (from the first sigma, the full noise, a random-weight model's output hardly depends on it).
    made = {}
    for kind, value in forms.items():
        (png,), _ = run(sd1_id, seed=8, steps=2, init_image=value, strength=0.4)
        made[kind] = assert_real_image(png, 64, 64).astype(int)
    for kind in ("pil", "array", "path"):
        assert np.array_equal(made[kind], made["bytes"]), f"{kind} gave another image than the PNG bytes"
    (txt,), _ = run(sd1_id, seed=8, steps=2)  # the same job without an init image
    no_init = np.abs(pixels(txt).astype(int) - made["bytes"]).mean()
    jpeg_off = np.abs(made["jpeg"] - made["bytes"]).mean()
    # The JPEG's small losses change the image a little; without the init image it is another image.
    assert 0 < jpeg_off < no_init / 4, (jpeg_off, no_init)


def test_progress_ticks_and_stats(sd1_id: str) -> None:
    job = qvac_nb.diffusion(model_id=sd1_id, prompt="ticks", seed=9, batch_count=2, **{**SMALL, "steps": 2})
    ticks = list(job.progress_stream)
    stats = job.stats.result(timeout=600)
    sample = [t for t in ticks if t.phase == "sample"]
    assert [t.step for t in sample] == [1, 2, 3, 4]
    assert all(t.total_steps == 4 for t in ticks)
    assert [t.image_index for t in sample] == [0, 0, 1, 1]
    assert any(t.phase == "decode" for t in ticks)
    assert all(b.elapsed_ms >= a.elapsed_ms for a, b in zip(ticks, ticks[1:], strict=False))
    assert stats.total_steps == 4 and stats.total_generations == 2
    assert 0 < stats.generation_ms <= stats.total_generation_ms <= stats.total_wall_ms
    assert stats.model_load_ms > 0


def test_async_progress_and_outputs(sd1_id: str) -> None:
    async def main() -> tuple[int, list[bytes], qvac_nb.Stats]:
        job = qvac_nb.diffusion(model_id=sd1_id, prompt="async", seed=12, **SMALL)
        n = 0
        async for _ in job.progress_stream:
            n += 1
        return n, await job.outputs, await job.stats

    n, outputs, stats = asyncio.run(main())
    assert n >= 2 and len(outputs) == 1 and stats.seed == 12


def test_preview_ticks_carry_small_pngs(sd1_id: str) -> None:
    job = qvac_nb.diffusion(model_id=sd1_id, prompt="preview", seed=1, preview=True, **{**SMALL, "steps": 2})
    job.outputs.result(timeout=600)
    previews = [t.preview for t in job.progress_stream.ticks if t.preview]
    assert previews, "no latent preview arrived"
    img = Image.open(io.BytesIO(previews[0]))
    assert img.width <= 64 and img.height <= 64


def test_flux2_img2img_needs_flux2_flow(flux2_id: str, flux2_edit_id: str, picture: Path) -> None:
    src = picture.read_bytes()
    with pytest.raises(qvac_nb.UnsupportedOperationError, match="flux2_flow"):
        qvac_nb.diffusion(model_id=flux2_id, prompt="x", init_image=src, **SMALL)
    (txt,), _ = run(flux2_edit_id, seed=2, cfg_scale=1.0)
    (edit,), _ = run(flux2_edit_id, seed=2, cfg_scale=1.0, init_image=src)
    assert_real_image(edit, 64, 64)
    assert not np.array_equal(pixels(txt), pixels(edit)), "the reference image had no effect"


def test_flux2_uses_guidance(flux2_id: str) -> None:
    assert models.get_model(flux2_id).uses_guidance
    (png,), stats = run(flux2_id, seed=3, cfg_scale=1.0, guidance=4.0)
    assert_real_image(png, 64, 64)
    assert qvac_nb.read_parameters(png)["guidance"] == 4.0


def test_esrgan_paired_x4(sd1_upscale_id: str) -> None:
    # Two passes (x16) are the example notebook 04's, run by test_notebooks: a minute and a half of CPU each.
    (a, b), s4 = run(sd1_upscale_id, seed=1, upscale=True, batch_count=2)  # every image of a batch is upscaled
    assert_real_image(a, 256, 256) is not None and pixels(b).shape == (256, 256, 3)
    assert (s4.width, s4.height, s4.total_pixels) == (256, 256, 2 * 256 * 256)


def test_standalone_upscale(upscaler_id: str, picture: Path) -> None:
    buf = io.BytesIO()
    Image.open(picture).crop((0, 0, 32, 32)).save(buf, "PNG")  # PNG bytes; small: the work grows with the pixels
    src = buf.getvalue()
    job = qvac_nb.upscale(model_id=upscaler_id, image=src)
    (png,) = job.outputs.result(timeout=600)
    assert pixels(png).shape == (128, 128, 3)
    assert job.stats.result().width == 128
    assert any(t.phase == "upscale" for t in job.progress_stream.ticks)
    small = pixels(src)[:16, :16]  # two x4 passes of a 64x64 image would cost minutes of CPU
    (twice,) = qvac_nb.upscale(model_id=upscaler_id, image=small, repeats=2).outputs.result(timeout=600)
    assert pixels(twice).shape == (256, 256, 3)


def test_upscale_with_a_paired_upscaler_keeps_parameters(sd1_upscale_id: str) -> None:
    (src,), _ = run(sd1_upscale_id, seed=31)
    (png,) = qvac_nb.upscale(model_id=sd1_upscale_id, image=src).outputs.result(timeout=600)
    assert pixels(png).shape == (256, 256, 3) and repr(png).startswith("<PngImage 256x256, ")
    assert qvac_nb.read_parameters(png)["seed"] == 31


def test_empty_prompt(sd1_id: str) -> None:
    (png,), _ = run(sd1_id, prompt="", seed=13)
    assert_real_image(png, 64, 64)


# ---------------------------------------------------------------- parameters


def test_read_parameters_reproduces_byte_for_byte(sd1_id: str) -> None:
    (_, second), _ = run(sd1_id, seed=40, batch_count=2, negative_prompt="fog", cfg_scale=5.5, sampling_method="euler")
    params = qvac_nb.read_parameters(second)
    assert params["seed"] == 41 and params["batch_count"] == 1
    (again,) = qvac_nb.diffusion(model_id=sd1_id, **params).outputs.result(timeout=600)
    assert again == second
    text = Image.open(io.BytesIO(second)).info["parameters"]
    assert text.startswith("a castle\nNegative prompt: fog\nSteps: 1, Sampler: euler") and "Seed: 41" in text
    # The model was loaded from a local path: a shared PNG names the file, never the folders it sits in.
    source = Path(str(qvac_nb.models.get_model(sd1_id).source))
    assert source.is_absolute() and f"Model: {source.name}," in text and str(source.parent) not in text
    assert stored_record(second)["model"] == source.name


def test_an_input_error_ends_in_the_callers_own_call(sd1_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message says it all; qvac_nb's validation frames above it would only bury that line."""
    with pytest.raises(qvac_nb.InvalidParameterError) as caught:
        qvac_nb.diffusion(model_id=sd1_id, prompt="x", steps=0)
    frames = traceback.extract_tb(caught.value.__traceback__)
    assert [f.name for f in frames] == ["test_an_input_error_ends_in_the_callers_own_call", "call"]
    assert "steps: must be between 1 and 150" in str(caught.value) and caught.value.param == "steps"
    with pytest.raises(qvac_nb.ModelFileError) as caught:
        qvac_nb.load_model("/nonexistent/folder/model.gguf")
    assert len(traceback.extract_tb(caught.value.__traceback__)) == 2
    monkeypatch.setenv("QVAC_NB_DEBUG", "1")  # for qvac_nb's own debugging: every frame
    with pytest.raises(qvac_nb.InvalidParameterError) as caught:
        qvac_nb.diffusion(model_id=sd1_id, prompt="x", steps=0)
    assert len(traceback.extract_tb(caught.value.__traceback__)) > 3


def test_random_seed_is_reported(sd1_id: str) -> None:
    (png,), stats = run(sd1_id)
    assert stats.seed >= 0 and qvac_nb.read_parameters(png)["seed"] == stats.seed
    # A cell shows an output as the image; its repr is one line, not the PNG's bytes; it is still bytes.
    assert isinstance(png, qvac_nb.PngImage) and isinstance(png, bytes) and png._repr_png_() == bytes(png)
    assert repr(png) == f"<PngImage 64x64, {len(png):,} bytes>" and repr([png]).count("PngImage") == 1
    assert pickle.loads(pickle.dumps(png)) == png and type(pickle.loads(pickle.dumps(png))) is qvac_nb.PngImage


def test_width_height_and_vae_tiling(sd1_id: str) -> None:
    (png,), stats = run(sd1_id, width=128, height=64, seed=1, vae_tiling=True)
    assert_real_image(png, 128, 64)
    assert (stats.width, stats.height) == (128, 64)


@pytest.mark.parametrize(("width", "height", "message"), [
    (96, 64, "width: 96 is not a size this SD 1.x model can make; the model makes sizes in multiples of 64; "
             "try 64 or 128$"),
    (64, 72, "height: 72 .* multiples of 64; try 64 or 128"),
    (4000, 64, "width: 4000 .* multiples of 64; try 3968 or 4032$"),
])
def test_sizes_the_model_cannot_make_are_refused(sd1_id: str, width: int, height: int, message: str) -> None:
    """The U-Net makes multiples of 64; the engine used to round 96 up to 128 while the record said 96."""
    with pytest.raises(qvac_nb.InvalidParameterError, match=f"^{message}"):
        qvac_nb.diffusion(model_id=sd1_id, prompt="x", width=width, height=height, steps=1)


def test_a_size_in_multiples_of_64_is_made_and_recorded_as_asked(sd1_id: str) -> None:
    """Beside the refused sizes above: a width of 3 x 64 is made at that width, and the record says so."""
    (png,), stats = run(sd1_id, width=192, height=64, seed=1)
    assert_real_image(png, 192, 64)
    assert qvac_nb.read_parameters(png)["width"] == stats.width == 192


def test_flux2_sizes_come_in_multiples_of_16(flux2_id: str) -> None:
    with pytest.raises(qvac_nb.InvalidParameterError, match=r"^width: 72 .* multiples of 16; try 64 or 80"):
        qvac_nb.diffusion(model_id=flux2_id, prompt="x", width=72, height=64, steps=1)
    (png,), stats = run(flux2_id, width=80, height=64, seed=1, cfg_scale=1.0)
    assert_real_image(png, 80, 64)
    assert (stats.width, stats.height) == (80, 64)


def test_cache_presets_equal_the_peers_ucache_and_change_the_image(sd1_model: registry.TestModel, sd1_id: str,
                                                                   tmp_path: Path) -> None:
    """Each preset equals the peer's generate_image with UCache at the preset's thresholds, and at least the
    most aggressive one skips a step (its image differs from the uncached one), so a preset that is dropped on
    the way to the engine fails here."""
    from peer import SEED, peer_images

    from qvac_nb import cache_presets

    # cfg above 1: the step cache handles the unconditional pass apart from the conditional one.
    settings = {"prompt": "a castle", "seed": SEED, "steps": 6, "cfg_scale": 7.0, "sampling_method": "euler",
                "scheduler": "discrete"}
    made = {preset: pixels(run(sd1_id, **settings, cache_preset=preset)[0][0])
            for preset in [None, *cache_presets.PRESETS]}
    peer_calls = [{"prompt": "a castle", "sample_steps": 6, "cfg_scale": 7.0, "sample_method": "euler",
                   "scheduler": "discrete", "cache_mode": "ucache",
                   "cache_reuse_threshold": threshold, "cache_start_percent": start, "cache_end_percent": end}
                  for threshold, start, end in cache_presets.PRESETS.values()]
    wanted = peer_images({"model": sd1_model.primary}, tmp_path / "peer.npy", *peer_calls)
    for (preset, image), want in zip(list(made.items())[1:], wanted, strict=True):
        assert np.array_equal(image, want), f"preset {preset!r} differs from the peer's UCache at its thresholds"
    assert not np.array_equal(made["ultra"], made[None]), "the 'ultra' preset skipped no step"


def test_clip_skip_and_eta(sd1_id: str) -> None:
    # Two steps: euler_a adds no noise on its last step (to sigma 0), where eta would have nothing to scale.
    (a,), _ = run(sd1_id, seed=1, steps=2, sampling_method="euler_a", eta=0.0)
    (b,), _ = run(sd1_id, seed=1, steps=2, sampling_method="euler_a", eta=1.0)
    assert not np.array_equal(pixels(a), pixels(b))
    (c,), _ = run(sd1_id, seed=1, clip_skip=2)
    assert_real_image(c, 64, 64)


def test_cancel_by_model_id(sd1_id: str) -> None:
    jobs = [qvac_nb.diffusion(model_id=sd1_id, prompt="q", **{**SMALL, "steps": 20}) for _ in range(3)]
    next(iter(jobs[0].progress_stream))
    assert qvac_nb.cancel(model_id=sd1_id) == 3
    for job in jobs:
        with pytest.raises(qvac_nb.CancelledError):
            job.outputs.result(timeout=600)
    assert run(sd1_id, seed=1)[0]


def test_job_images_and_repr(sd1_id: str) -> None:
    job = qvac_nb.diffusion(model_id=sd1_id, prompt="pil", seed=1, **SMALL)
    (img,) = job.images(timeout=600)
    assert img.size == (64, 64)
    assert "done" in repr(job)


# ---------------------------------------------------------------- load_model config


def test_camel_case_aliases_and_companions(flux2_model) -> None:  # noqa: ANN001
    cfg = {
        "llmModelSrc": str(flux2_model.files["llm"]),
        "vaeModelSrc": str(flux2_model.files["vae"]),
        "threads": 2,
        "flashAttn": False,
        "diffusionFa": False,
        "clipOnCpu": True,
        "vaeOnCpu": True,
        "samplerRng": "cpu",
        "rng": "cuda",
        "loraApplyMode": "auto",
        "offloadToCpu": False,
        "prediction": "auto",
    }
    model_id = qvac_nb.load_model(str(flux2_model.primary), model_config=cfg)
    try:
        model = models.get_model(model_id)
        assert model.family == "flux2" and {"llm", "vae", "diffusion_model"} <= set(model.files)
        assert model.config["sampler_rng"] == "cpu"
        (png,), _ = run(model_id, seed=1, cfg_scale=1.0)
        assert_real_image(png, 64, 64)
    finally:
        qvac_nb.unload_model(model_id=model_id)


def test_sd2_v_prediction(sd2_model) -> None:  # noqa: ANN001
    model_id = qvac_nb.load_model(str(sd2_model.primary), model_config={"threads": 2, "prediction": "v"})
    try:
        assert models.get_model(model_id).prediction == "v"
        (png,), _ = run(model_id, seed=1)
        assert_real_image(png, 64, 64)
    finally:
        qvac_nb.unload_model(model_id=model_id)


def test_device_gpu_on_a_cpu_build_warns_once(sd1_model) -> None:  # noqa: ANN001
    models._gpu_warned = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = [
            qvac_nb.load_model(str(sd1_model.primary), model_config={"device": "gpu", "threads": 2}) for _ in range(2)
        ]
    assert len([w for w in caught if "no GPU backend" in str(w.message)]) == 1
    assert ids[0] == ids[1]  # the same files and config: the second call returns the loaded copy
    qvac_nb.unload_model(model_id=ids[0])


def test_reloading_the_same_model_returns_the_loaded_copy(sd1_model) -> None:  # noqa: ANN001
    from qvac_nb import runner

    path, cfg = str(sd1_model.primary), {"threads": 2}
    first = qvac_nb.load_model(path, model_config=cfg)
    loaded: list[str] = [first]
    try:
        assert qvac_nb.load_model(path, model_config=dict(cfg)) == first  # a re-run cell: no second copy
        assert qvac_nb.loaded_models().count(first) == 1
        other = qvac_nb.load_model(path, model_config={"threads": 1})  # another config is another model
        loaded.append(other)
        assert other != first
        fresh = qvac_nb.load_model(path, model_config=cfg, reload=True)  # replaces the old copy
        loaded.append(fresh)
        assert fresh not in (first, other) and first not in qvac_nb.loaded_models()
        copy = models.load_copy(path, model_config=cfg)  # a private copy is never handed out again
        loaded.append(copy)
        assert copy != fresh and qvac_nb.load_model(path, model_config=cfg) == fresh
        pids = {runner.runner_for(m).worker.proc.pid for m in (other, fresh, copy)}  # type: ignore[union-attr]
        assert len(pids) == 3  # each copy has its own worker process
        assert run(fresh, seed=3)[0] == run(copy, seed=3)[0]
        with pytest.raises(qvac_nb.InvalidTypeError, match="reload"):
            qvac_nb.load_model(path, reload="yes")
    finally:
        for model_id in loaded:
            if model_id in qvac_nb.loaded_models():
                qvac_nb.unload_model(model_id=model_id)


def test_weight_type_and_load_progress(sd1_model) -> None:  # noqa: ANN001
    events: list[dict] = []
    model_id = qvac_nb.load_model(
        str(sd1_model.primary), model_config={"threads": 2, "type": "q8_0"}, on_progress=events.append
    )
    try:
        loads = [e for e in events if e["phase"] == "load"]
        assert loads and loads[-1]["percentage"] == pytest.approx(100.0)
        assert run(model_id, seed=1)[0]
    finally:
        qvac_nb.unload_model(model_id=model_id)


def test_unload_model_frees_and_forgets(sd1_model) -> None:  # noqa: ANN001
    model_id = qvac_nb.load_model(str(sd1_model.primary), model_config={"threads": 2})
    qvac_nb.unload_model(model_id=model_id)
    assert model_id not in qvac_nb.loaded_models()
    with pytest.raises(qvac_nb.ModelNotLoadedError, match="model_id"):
        qvac_nb.diffusion(model_id=model_id, prompt="x")
    assert sd1_model.primary.exists(), "clear_storage=False must keep a local file"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        ({"width": 65}, qvac_nb.InvalidParameterError, "width: 65 is not a size this SD 1.x model can make"),
        ({"height": 8}, qvac_nb.InvalidParameterError, "height: must be between 64"),
        ({"steps": 0}, qvac_nb.InvalidParameterError, "steps"),
        ({"steps": "20"}, qvac_nb.InvalidTypeError, "steps: expected an integer"),
        ({"cfg_scale": float("nan")}, qvac_nb.InvalidParameterError, "cfg_scale"),
        ({"sampling_method": "eular_a"}, qvac_nb.InvalidParameterError, "did you mean 'euler_a'"),
        ({"scheduler": "karas"}, qvac_nb.InvalidParameterError, "did you mean 'karras'"),
        ({"seed": -2}, qvac_nb.InvalidParameterError, "seed"),
        ({"batch_count": 0}, qvac_nb.InvalidParameterError, "batch_count"),
        ({"strength": 0.0}, qvac_nb.InvalidParameterError, "strength"),
        ({"cache_preset": "turbo"}, qvac_nb.InvalidParameterError, "cache_preset"),
        ({"upscale": True}, qvac_nb.UnsupportedOperationError, "upscaler"),
        ({"upscale": {"repeat": 2}}, qvac_nb.UnknownParameterError, "did you mean 'repeats'"),
        ({"init_image": b"not an image"}, qvac_nb.InvalidParameterError, "init_image"),
        ({"init_image": "/no/such.png"}, qvac_nb.ModelFileError, "init_image"),
        ({"negative_promt": "x"}, qvac_nb.UnknownParameterError, "did you mean 'negative_prompt'"),
        ({"prompt": 3}, qvac_nb.InvalidTypeError, "prompt"),
        ({"vae_tiling": "yes"}, qvac_nb.InvalidTypeError, "vae_tiling"),
    ],
)
def test_diffusion_rejects_bad_arguments(sd1_id: str, kwargs: dict, error: type, words: str) -> None:
    args = {"model_id": sd1_id, "prompt": "x", **SMALL, **kwargs}
    with pytest.raises(error, match=words.replace("(", r"\(")) as info:
        qvac_nb.diffusion(**args)
    assert isinstance(info.value, qvac_nb.QvacError)


def test_operations_the_model_cannot_do(sd1_id: str, upscaler_id: str) -> None:
    with pytest.raises(qvac_nb.UnsupportedOperationError, match="mode='diffusion'"):
        qvac_nb.upscale(model_id=sd1_id, image=np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(qvac_nb.UnsupportedOperationError, match="mode='upscale'"):
        qvac_nb.diffusion(model_id=upscaler_id, prompt="x")
    with pytest.raises(qvac_nb.ModelNotLoadedError, match="not a loaded model"):
        qvac_nb.cancel(model_id="nope#1")
    with pytest.raises(qvac_nb.InvalidParameterError, match="repeats"):
        qvac_nb.upscale(model_id=upscaler_id, image=np.zeros((8, 8, 3), np.uint8), repeats=9)


@pytest.mark.parametrize(
    "config,error,words",
    [
        ({"threds": 2}, qvac_nb.UnknownParameterError, "did you mean 'threads'"),
        ({"prediction": "vv"}, qvac_nb.InvalidParameterError, "model_config.prediction"),
        ({"device": "tpu"}, qvac_nb.InvalidParameterError, "model_config.device"),
        ({"threads": 0}, qvac_nb.InvalidParameterError, "model_config.threads"),
        ({"type": "q9_9"}, qvac_nb.InvalidParameterError, "model_config.type"),
        ({"flash_attn": 1}, qvac_nb.InvalidTypeError, "model_config.flash_attn"),
        ({"llmModelSrc": "/no/such/file.gguf"}, qvac_nb.ModelFileError, "llm_model_src"),
        ({"upscaler": {"tile": 4}}, qvac_nb.UnknownParameterError, "did you mean 'tile_size'"),
        ({"mode": "upscale"}, qvac_nb.UnsupportedOperationError, "not an ESRGAN"),
    ],
)
def test_load_model_rejects_bad_config(sd1_model, config: dict, error: type, words: str) -> None:  # noqa: ANN001
    with pytest.raises(error, match=words):
        qvac_nb.load_model(str(sd1_model.primary), model_config=config)


@pytest.mark.parametrize(
    "upscaler_src,error,words",
    [
        ("/no/such/RealESRGAN_x4plus.pth", qvac_nb.ModelFileError, "upscaler.model_src"),
        ("SD1", qvac_nb.UnsupportedOperationError, "not an ESRGAN model"),
    ],
)
def test_a_bad_paired_upscaler_is_refused_before_the_diffusion_model_loads(
    sd1_model, monkeypatch: pytest.MonkeyPatch, upscaler_src: str, error: type, words: str  # noqa: ANN001
) -> None:
    built: list[object] = []

    def no_load(*args: object) -> None:
        built.append(args)
        raise AssertionError("the diffusion model was loaded before the upscaler was checked")

    monkeypatch.setattr(models, "_load_in", no_load)
    src = str(sd1_model.primary) if upscaler_src == "SD1" else upscaler_src
    before = qvac_nb.loaded_models()
    with pytest.raises(error, match=words):
        qvac_nb.load_model(str(sd1_model.primary), model_config={"threads": 2, "upscaler": {"model_src": src}})
    assert built == []
    assert qvac_nb.loaded_models() == before


def test_load_model_rejects_missing_file_and_bad_type(tmp_path: Path) -> None:
    with pytest.raises(qvac_nb.ModelFileError):
        qvac_nb.load_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(qvac_nb.InvalidParameterError, match="model_type"):
        qvac_nb.load_model(str(tmp_path / "missing.gguf"), model_type="audio")
    with pytest.raises(qvac_nb.UnknownParameterError, match="model_conifg"):
        qvac_nb.load_model("x", model_conifg={})  # type: ignore[call-arg]
