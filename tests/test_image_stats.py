"""Per-image stats: each output `PngImage` carries what making it cost (`ImageStats`), the job's `Stats.images`
lists the same, and the per-image times add up to the job's phases."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import qvac_nb
from qvac_nb.png_image import ImageStats, PngImage
from qvac_nb.worker.engine_calls import image_spans

SMALL = {"prompt": "a red boat", "width": 64, "height": 64, "steps": 2, "cfg_scale": 1.0}


def test_image_spans_split_sampling_and_decoding_by_image() -> None:
    """The engine job's marks (no engine here): two images sampled, a hires pass over both, two latents decoded."""
    plain = [("encode", 0.0), ("sample", 10.0), ("encode", 30.0), ("sample", 35.0), ("encode", 60.0),
             ("decode", 62.0), ("decode", 70.0), ("decode", 79.0), ("end", 80.0)]
    assert image_spans(plain, 2) == ([20.0, 25.0], [8.0, 9.0])
    hires = [("encode", 0.0), ("sample", 10.0), ("encode", 20.0), ("sample", 21.0), ("encode", 31.0),
             ("sample", 40.0), ("encode", 45.0), ("sample", 46.0), ("encode", 53.0),
             ("decode", 55.0), ("decode", 60.0), ("decode", 66.0), ("end", 67.0)]
    assert image_spans(hires, 2) == ([10.0 + 5.0, 10.0 + 7.0], [5.0, 6.0])
    # Marks of another shape (an engine without per-latent marks): the phase's total shared equally.
    odd = [("encode", 0.0), ("sample", 10.0), ("decode", 30.0), ("end", 40.0)]
    assert image_spans(odd, 2) == ([10.0, 10.0], [5.0, 5.0])


def test_each_image_of_a_batch_carries_its_own_stats(sd1_id: str) -> None:
    job = qvac_nb.diffusion(model_id=sd1_id, seed=31, batch_count=2, **SMALL)
    outputs = job.outputs.result(timeout=600)
    stats = job.stats.result(timeout=600)
    assert stats.images == tuple(png.stats for png in outputs)
    for index, png in enumerate(outputs):
        image = png.stats
        assert isinstance(image, ImageStats)
        assert (image.index, image.seed, image.steps) == (index, 31 + index, 2)
        assert image.seed == png.seed == qvac_nb.read_parameters(png)["seed"]
        assert (image.width, image.height) == png.size == (64, 64)
        assert image.denoising_ms > 0 and image.vae_decode_ms > 0 and image.postprocess_ms > 0
    # The images' sampling is the job's (the engine samples them one after the other); decoding is each latent's.
    assert sum(png.stats.denoising_ms for png in outputs) == pytest.approx(stats.denoising_ms)
    assert sum(png.stats.vae_decode_ms for png in outputs) <= stats.vae_decode_ms
    assert sum(png.stats.steps for png in outputs) == stats.total_steps
    again = pickle.loads(pickle.dumps(outputs[1]))  # a batch across processes or Ray keeps them
    assert isinstance(again, PngImage) and again.stats == outputs[1].stats and again == outputs[1]


def test_a_hires_fix_counts_both_passes_for_each_image(sd1_id: str) -> None:
    """The hires pass goes over the batch again: its steps and time belong to each image in turn (the progress
    ticks say which image), not all to the last one."""
    job = qvac_nb.diffusion(model_id=sd1_id, seed=5, batch_count=2, hires={"scale": 2.0, "steps": 2, "strength": 0.5},
                            **SMALL)
    outputs = job.outputs.result(timeout=600)
    stats = job.stats.result(timeout=600)
    first, second = (png.stats for png in outputs)
    assert first.steps == second.steps > SMALL["steps"]  # both passes, each image the same
    assert first.steps + second.steps == stats.total_steps
    assert (first.width, first.height) == outputs[0].size == (128, 128)
    assert sum(png.stats.denoising_ms for png in outputs) == pytest.approx(stats.denoising_ms)
    hires_ticks = [t.image_index for t in job.progress_stream.ticks if t.phase == "sample"][2 * SMALL["steps"]:]
    half = len(hires_ticks) // 2
    assert hires_ticks == [0] * half + [1] * half


def test_an_upscale_carries_its_stats(sd1_id: str, upscaler_id: str) -> None:
    (source,) = qvac_nb.diffusion(model_id=sd1_id, seed=8, **SMALL).outputs.result(timeout=600)
    job = qvac_nb.upscale(model_id=upscaler_id, image=source)
    (png,) = job.outputs.result(timeout=600)
    image = png.stats
    assert image is not None and job.stats.result(timeout=600).images == (image,)
    assert (image.index, image.seed, image.steps, image.denoising_ms) == (0, 8, 0, 0.0)
    assert (image.width, image.height) == png.size == (256, 256)
    assert image.postprocess_ms > 0


def test_a_png_without_a_job_has_no_stats() -> None:
    from qvac_nb.png import encode_png

    png = PngImage(encode_png(np.zeros((8, 8, 3), np.uint8), None))
    assert png.stats is None and png.record is None
