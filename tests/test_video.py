"""video(): Wan 2.1 text-to-video (through the Studio) and Wan 2.2 TI2V image-to-video (through a batch, which
calls video() for each item) in qvac_nb, frame for frame equal to the peer's generate_video; the MP4 and WebP
files, their records, errors and cancel.

The Wan test models are full size where the engine fixes the geometry (testmodels/wan.py: the UMT5-XXL
encoder alone is 3.2 GB, and every video costs one full 512-token pass of it), so each video is 64x64 (the
smallest side video() takes, though the engine makes 16x16; TI2V: 64x64 too, a multiple of 32), 5 frames (the
fewest that are a video: the engine makes 4k + 1), 1 step, and each model is loaded once for its tests. The
peer runs in a process of its own after qvac_nb's worker made its frames.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import THREADS, _model
from peer import peer_video
from PIL import Image
from widget_driver import Recorder, msg, wait_for

import qvac_nb
from qvac_nb import cache_presets, engine, families, models, video_files
from qvac_nb.batching.items import BatchValidationError
from qvac_nb.errors import InvalidParameterError, UnsupportedOperationError
from qvac_nb.video_generation import VideoJob, validate_video
from qvac_nb.video_schema import frames_made
from qvac_nb.widgets import Studio, static_html

# cfg 1: one UMT5 pass a video (each costs a full 512-token pass of the 5.7B encoder, about a minute here).
TINY = {"width": 64, "height": 64, "video_frames": 5, "steps": 1, "seed": 11, "cfg_scale": 1.0}
PROMPT = "a lovely cat walking"
# The MP4 codec's tolerance: H.264 at crf 18 in yuv420p (what every browser plays) keeps luma within a few levels
# of the engine's frames but shares one chroma sample between 2x2 pixels, so the random-weight models' per-pixel
# colour noise is not kept. The check: the mean absolute difference of BT.601 luma, in 0-255 levels.
MP4_LUMA_TOLERANCE = 6.0


def _luma_error(decoded: np.ndarray, frames: np.ndarray) -> float:
    weights = np.array([0.299, 0.587, 0.114])
    return float(np.abs(decoded.astype(float) @ weights - frames.astype(float) @ weights).mean())


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module", autouse=True)
def _patient_watchdog() -> Iterator[None]:
    """A Wan video's text encoding is a minute of the 5.7B UMT5 here; on a loaded 2-core machine its worker once
    took longer than 15 s to answer the watchdog's ping. The watchdog's own tests keep its real timing."""
    from qvac_nb import runner

    saved = runner.PING_TIMEOUT_S
    runner.PING_TIMEOUT_S = 60.0
    yield
    runner.PING_TIMEOUT_S = saved


@pytest.fixture(scope="module")
def t2v_loaded() -> Iterator[tuple[str, list[logging.LogRecord]]]:
    """The module's Wan 2.1 model (a private copy: loaded here, whatever else is loaded) and the engine's log
    records of its load, every level (test_a_published_5d_gguf_loads_without_error_lines reads them)."""
    wan = _model("wan21_t2v")
    engine_log = logging.getLogger("qvac_nb.engine")
    kept, level = _Kept(), engine_log.level
    engine_log.addHandler(kept)
    engine_log.setLevel(logging.DEBUG)
    try:
        model_id = models.load_copy(str(wan.primary),
                                    model_config={"mode": "video", "threads": THREADS, **wan.model_config()})
    finally:
        engine_log.removeHandler(kept)
        engine_log.setLevel(level)
    yield model_id, kept.records
    if model_id in qvac_nb.loaded_models():
        qvac_nb.unload_model(model_id=model_id)


@pytest.fixture(scope="module")
def t2v_id(t2v_loaded: tuple[str, list[logging.LogRecord]]) -> str:
    return t2v_loaded[0]


@pytest.fixture(scope="module")
def studio_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("studio-videos")


@pytest.fixture(scope="module")
def t2v_studio(t2v_id: str, studio_folder: Path) -> Iterator[tuple[Studio, VideoJob, Recorder]]:
    """The module's text-to-video, made as a user makes it in the Studio: the form's values sent with Generate.

    One video serves every test below (each costs a full UMT5 pass): the peer comparison, the file's record
    (which must equal a direct video() call's) and the Studio's gallery and history folder."""
    studio = Studio(t2v_id, output_dir=studio_folder, lora_dir=studio_folder / "no-loras")
    recorder = Recorder(studio)
    form = {"prompt": PROMPT, "negative_prompt": "blurry", "width": 64, "height": 64, "video_frames": 5, "steps": 1,
            "seed": str(TINY["seed"]), "random_seed": False, "cfg_scale": TINY["cfg_scale"]}
    msg(studio, {"type": "generate", "params": form})
    job = studio.job
    assert isinstance(job, VideoJob), studio.error
    wait_for(lambda: not studio.busy, timeout=900)  # the model reloads first (the cancel test ended its worker)
    yield studio, job, recorder
    studio.close()


@pytest.fixture(scope="module")
def t2v_video(t2v_studio: tuple[Studio, VideoJob, Recorder]) -> qvac_nb.Video:
    return t2v_studio[1].video(timeout=0)


# ---------------------------------------------------------------- without the engine


def test_the_engine_makes_4k_plus_1_frames() -> None:
    assert [frames_made(n) for n in (1, 2, 4, 5, 6, 8, 9, 33, 34)] == [1, 1, 1, 5, 5, 5, 9, 33, 33]


def test_webp_keeps_the_frames_and_mp4_stays_close(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = np.repeat(np.repeat((rng.random((5, 8, 8, 3)) * 255).astype(np.uint8), 8, 1), 8, 2)
    record = {"prompt": "p", "seed": 3, "kind": "video", "video_frames": 5, "fps": 16, "width": 64, "height": 64}
    webp = video_files.encode_webp(frames, 16, record)
    mp4 = video_files.encode_mp4(frames, 16, record)
    assert np.array_equal(video_files.decode_frames(webp), frames)
    decoded = video_files.decode_frames(mp4)
    assert decoded.shape == frames.shape
    assert _luma_error(decoded, frames) < MP4_LUMA_TOLERANCE
    for data in (mp4, webp):
        assert qvac_nb.read_parameters(data) == {"prompt": "p", "seed": 3, "video_frames": 5, "fps": 16,
                                                 "width": 64, "height": 64}
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4)
    assert qvac_nb.read_parameters(path)["seed"] == 3
    with Image.open(io.BytesIO(webp)) as img:
        img.seek(1)
        img.load()  # Pillow reads a frame's duration as it decodes it
        assert (img.n_frames, img.info.get("duration"), img.info.get("loop")) == (5, 62, 0)


# ---------------------------------------------------------------- Wan 2.1 text-to-video


def test_cancel_while_encoding_ends_the_worker(t2v_id: str) -> None:
    """Cancelled while the engine encodes the prompt (a minute of UMT5 on the test model, with no step to stop
    at), so its worker is ended. The next video (the module's, made after this test) reloads the model."""
    job = qvac_nb.video(model_id=t2v_id, prompt=PROMPT, **{**TINY, "steps": 30})
    time.sleep(3.0)  # into the job's prompt encoding
    assert not job.done()
    job.cancel()
    # No clock here (the machine is shared): the error says the engine was stopped by ending its worker,
    # which the runner does one second (CANCEL_GRACE_S) after a cancel it cannot unwind.
    with pytest.raises(qvac_nb.CancelledError, match="while encoding the prompt.*its worker was ended"):
        job.outputs.result(timeout=60)


def test_t2v_frames_equal_the_peer(t2v_video: qvac_nb.Video, tmp_path: Path) -> None:
    assert t2v_video.frame_count == 5 and t2v_video.array.shape == (5, 64, 64, 3)
    assert t2v_video.array.std() > 1.0  # not a flat video
    assert len({f.tobytes() for f in t2v_video.array}) > 1  # the frames differ
    peer = peer_video(_model("wan21_t2v").files, tmp_path / "peer.npy", prompt=PROMPT, negative_prompt="blurry",
                      width=64, height=64, video_frames=5, sample_steps=1, cfg_scale=1.0, flow_shift=3.0,
                      sample_method="euler", seed=11, timeout=900)
    assert np.array_equal(t2v_video.array, peer)


def test_the_mp4_plays_back_the_frames_and_carries_the_call(t2v_video: qvac_nb.Video, t2v_id: str) -> None:
    assert video_files.sniff(bytes(t2v_video)) == "mp4" and t2v_video.fps == 16  # Wan 2.1's frame rate
    decoded = video_files.decode_frames(bytes(t2v_video))
    assert decoded.shape == t2v_video.array.shape
    assert _luma_error(decoded, t2v_video.array) < MP4_LUMA_TOLERANCE
    params = qvac_nb.read_parameters(bytes(t2v_video))
    assert params == {**TINY, "prompt": PROMPT, "negative_prompt": "blurry", "mode": "txt2vid", "fps": 16,
                      "flow_shift": 3.0, "sampling_method": "euler",
                      "scheduler": params["scheduler"], "high_noise_steps": -1, "high_noise_cfg_scale": 3.5,
                      "high_noise_sampling_method": None, "moe_boundary": 0.875, "vae_tiling": False,
                      "cache_preset": None, "lora": None, "output_format": "mp4"}
    record = video_files.read_record(bytes(t2v_video))
    assert "/" not in str(record), "a shared video must not carry local paths"
    # The record replays as the same request (a generation costs a full UMT5 pass: not run again here).
    first = validate_video(model_id=t2v_id, prompt=PROMPT, negative_prompt="blurry", **TINY)
    again = validate_video(model_id=t2v_id, **params)
    assert again.record() == first.record()


def test_the_inline_player_embeds_the_file(t2v_video: qvac_nb.Video) -> None:
    html = t2v_video._repr_html_()
    assert "<video" in html and "data:video/mp4;base64," in html and "data:image/webp;base64," in html
    assert repr(t2v_video).startswith("<Video mp4 64x64, 5 frames at 16 fps")


@pytest.mark.parametrize(("params", "param"), [
    ({"video_frames": 0}, "video_frames"),
    ({"video_frames": 1000}, "video_frames"),
    ({"width": 72}, "width"),
    ({"fps": 0}, "fps"),
    ({"mode": "img2vid"}, "mode"),
    ({"output_format": "gif"}, "output_format"),
    ({"high_noise_steps": 4}, "high_noise_steps"),
])
def test_bad_video_requests_name_their_parameter(t2v_id: str, params: dict[str, Any], param: str) -> None:
    with pytest.raises(qvac_nb.QvacError) as err:
        qvac_nb.video(model_id=t2v_id, prompt=PROMPT, **{**TINY, **params})
    assert err.value.param == param, str(err.value)


def test_a_step_cache_preset_reaches_the_engine_request(t2v_id: str) -> None:
    """Checked on the request the worker copies into the engine's sd_vid_gen_params_t (its `cache` block, which
    the engine's video path reads); a second video to compare pixels would cost another full UMT5 pass."""
    names = engine.enum_names()
    plain = validate_video(model_id=t2v_id, prompt=PROMPT, **TINY).engine_fields(names)
    cached = validate_video(model_id=t2v_id, prompt=PROMPT, cache_preset="ultra", **TINY).engine_fields(names)
    assert not any(key.startswith("cache_") for key in plain)
    threshold, start, end = cache_presets.PRESETS["ultra"]
    assert cached == {**plain, "cache_mode": families.SD_CACHE_EASYCACHE, "cache_reuse_threshold": threshold,
                      "cache_start_percent": start, "cache_end_percent": end}
    from qvac_nb import _engine  # the worker sets each field on this class (worker/video_calls.py)

    assert all(isinstance(getattr(_engine.VideoRequest, key, None), property) for key in cached)


def test_a_text_to_video_model_takes_no_init_image(t2v_id: str) -> None:
    with pytest.raises(UnsupportedOperationError) as err:
        qvac_nb.video(model_id=t2v_id, prompt=PROMPT, init_image=np.zeros((64, 64, 3), np.uint8), **TINY)
    assert err.value.param == "mode" and "text-to-video" in str(err.value)


def test_images_and_videos_keep_to_their_own_calls(t2v_id: str, sd1_id: str, sd1_model: Any) -> None:
    with pytest.raises(UnsupportedOperationError) as err:
        qvac_nb.video(model_id=sd1_id, prompt=PROMPT, **TINY)
    assert err.value.param == "model_id" and "model_config={'mode': 'video'}" in str(err.value)
    with pytest.raises(UnsupportedOperationError) as err:
        qvac_nb.diffusion(model_id=t2v_id, prompt=PROMPT)
    assert err.value.param == "model_id"
    wan = _model("wan21_t2v")
    with pytest.raises(UnsupportedOperationError) as err:
        qvac_nb.load_model(str(wan.primary), model_config=wan.model_config())
    assert err.value.param == "model_type" and "model_config={'mode': 'video'}" in str(err.value)
    with pytest.raises(UnsupportedOperationError, match="not a video model"):
        qvac_nb.load_model(str(sd1_model.primary), model_config={"mode": "video"})


# ---------------------------------------------------------------- the Studio and the history folder


def test_the_studio_saves_the_video_and_a_new_studio_plays_it_from_the_folder(
        t2v_studio: tuple[Studio, VideoJob, Recorder], studio_folder: Path) -> None:
    studio, job, recorder = t2v_studio
    clip = job.video(timeout=0)
    assert job.stats.result(timeout=0).total_frames == 5  # the job's stats count the video's frames
    assert recorder.phases()[-1] == "done" and not studio.error
    rules = studio.form_rules
    assert rules["video"] and "batch_count" in rules["hidden"] and "video_frames" not in rules["hidden"]
    assert rules["init_label"] == "" and not studio.inputs_shown["end_image"]  # a text-to-video network
    entry = studio.gallery[0]
    assert (entry["video"], entry["frames"], entry["fps"], entry["format"]) == (entry["video"], 5, 16, "mp4")
    # The history folder holds the file itself, with the call inside.
    [record] = qvac_nb.history(studio_folder)
    assert record.is_video and record.path.suffix == ".mp4" and record.path.read_bytes() == bytes(clip)
    assert qvac_nb.read_parameters(record.path.read_bytes())["video_frames"] == 5
    # The front-end asks for the video's id (to play it) and gets the file.
    msg(studio, {"type": "image", "id": entry["video"]})
    assert recorder.of_type("image")[-1][1] == [bytes(clip)]
    # Where the MP4 cannot play, the browser asks for the WebP: lossless, the engine's frames exactly.
    assert np.array_equal(video_files.decode_frames(studio._store.get(entry["webp"])), clip.array)
    # A new Studio (a restarted kernel) and Gallery.from_folder list it and play it from the file.
    again = Studio(output_dir=studio_folder)
    [listed] = again.gallery
    assert (listed["frames"], listed["fps"], listed["params"]["prompt"]) == (5, 16, PROMPT)
    assert listed["video_file"] == record.path.name and again.videos == [bytes(clip)]
    gallery = qvac_nb.Gallery.from_folder(studio_folder)
    [shown] = gallery.images
    assert gallery._store.get(shown["video"]) == bytes(clip)
    from_file = gallery._store.get(shown["webp"])  # made from the MP4 on disk: its decoded frames
    assert np.array_equal(video_files.decode_frames(from_file), video_files.decode_frames(bytes(clip)))
    first = np.asarray(Image.open(io.BytesIO(gallery._store.get(shown["id"]))).convert("RGB"))
    assert _luma_error(first[None], clip.array[:1]) < MP4_LUMA_TOLERANCE  # the card is the first frame
    static = static_html.snapshot("gallery", gallery.images)  # what nbviewer or GitHub shows: the first frame
    assert "5 frames at 16 fps, first frame shown" in static and "data:image/jpeg;base64," in static
    archive, count = gallery._store.zip_of(gallery.images)
    assert count == 1 and record.path.name.encode() in archive
    # "Reuse all" puts the video's own fields back into the form.
    again.params = {**again.params, "video_frames": 33, "fps": 8}
    msg(again, {"type": "reuse_all", "id": listed["id"]})
    assert (again.params["video_frames"], again.params["fps"], again.params["seed"]) == (5, 16, TINY["seed"])
    with pytest.raises(UnsupportedOperationError, match="makes videos"):
        studio.grid(("seed", [1, 2]))
    again.close()
    gallery.close()


def test_the_studio_form_sends_each_call_only_its_own_fields(t2v_id: str, sd1_id: str) -> None:
    video_studio = Studio(t2v_id, output_dir=None, video_frames=9)
    image_studio = Studio(sd1_id, output_dir=None, video_frames=9)
    try:
        video_kwargs, _ = video_studio._form_kwargs({})
        image_kwargs, _ = image_studio._form_kwargs({})
        assert video_kwargs["video_frames"] == 9 and video_kwargs["fps"] == 16  # Wan 2.1's rate, the model's default
        assert not {"batch_count", "clip_skip", "strength", "high_noise_steps"} & set(video_kwargs)
        assert not {"video_frames", "fps", "output_format"} & set(image_kwargs)
        validate_video(**video_kwargs)  # everything the form sends, video() takes
        qvac_nb.generation.validate_diffusion(**image_kwargs)
        assert "video_frames" in image_studio.form_rules["hidden"] and not image_studio.form_rules["video"]
        assert video_studio.loaded == image_studio.loaded and {t2v_id, sd1_id} <= set(video_studio.loaded)
    finally:
        video_studio.close()
        image_studio.close()


# ---------------------------------------------------------------- Wan 2.2 TI2V image-to-video


def test_ti2v_image_to_video_through_a_batch_equals_the_peer_and_resumes(picture: Path, tmp_path: Path) -> None:
    """Wan 2.2 TI2V image-to-video, made by qvac_nb.batch: one video (a full UMT5 pass) serves the batch's checks
    and video()'s, which the batch calls for each item on its own copy of the model. Items the kernel cannot
    refuse before loading (it does not know the file is TI2V) are refused by video() on the loaded model and
    recorded on their item; the batch goes on."""
    ti2v = _model("wan22_ti2v")
    config = {"mode": "video", "threads": THREADS, **ti2v.model_config()}
    # 7 frames asked, as WebP (lossless: the file's frames are the engine's): the engine makes 5 (4k + 1).
    item = {"prompt": PROMPT, "init_image": str(picture), "output_format": "webp", **TINY, "video_frames": 7}
    with pytest.raises(BatchValidationError) as err:  # video() parameters, checked before anything loads
        qvac_nb.batch([item, {**item, "video_frames": 0}, {**item, "batch_count": 2}], model_src=str(ti2v.primary),
                      model_config=config, output_dir=tmp_path, progress=False)
    assert [(n, e.param) for n, e in err.value.errors] == [(1, "video_frames"), (2, "batch_count")]
    no_image = {"prompt": PROMPT, "mode": "img2vid", **TINY}
    result = qvac_nb.batch([item, no_image, {**item, "width": 80}], model_src=str(ti2v.primary),
                           model_config=config, output_dir=tmp_path, progress=False)
    made, refused_mode, refused_width = result.records
    assert refused_mode.status == "failed" and refused_mode.error is not None
    assert refused_mode.error.startswith(f"{InvalidParameterError.__name__}: init_image:"), refused_mode.error
    assert refused_width.status == "failed" and refused_width.error is not None
    assert refused_width.error.startswith(f"{InvalidParameterError.__name__}: width:"), refused_width.error
    assert "multiples of 32" in refused_width.error
    assert made.status == "ok", made.error
    record = made.parameters  # the Video's record, as the batch's index keeps it
    assert record["fps"] == 24 and record["mode"] == "img2vid" and record["init_image_used"]
    assert record["video_frames"] == 5 and record["video_frames_asked"] == 7
    data = made.path.read_bytes()
    assert made.path.suffix == ".webp" and video_files.sniff(data) == "webp"
    in_file = qvac_nb.read_parameters(data)  # the file carries the call itself
    assert (in_file["video_frames"], in_file["fps"], in_file["seed"]) == (5, 24, TINY["seed"])
    frames = video_files.decode_frames(data)
    assert frames.shape == (5, 64, 64, 3) and frames.std() > 1.0 and len({f.tobytes() for f in frames}) > 1
    peer = peer_video(ti2v.files, tmp_path / "peer.npy", images={"init_image": picture},
                      prompt=PROMPT, width=64, height=64, video_frames=7, sample_steps=1, cfg_scale=1.0,
                      flow_shift=3.0, sample_method="euler", seed=11, timeout=900)
    assert np.array_equal(frames, peer)
    # Run again: the finished video is found in output_dir by its key and not made again.
    again = qvac_nb.batch([item], model_src=str(ti2v.primary), model_config=config, output_dir=tmp_path,
                          progress=False)
    assert [r.status for r in again.records] == ["skipped"] and again.records[0].path == made.path


def test_a_published_5d_gguf_loads_without_error_lines(t2v_loaded: tuple[str, list[logging.LogRecord]]) -> None:
    """ggml's reader refuses the 5-D patch embedding at error level before the engine's own reader takes the file:
    those lines are not errors, so they are kept at debug level (a notebook shows warnings and errors). Read from
    the module model's own load (the test model's DiT is such a GGUF), every level of it kept."""
    noise = [r for r in t2v_loaded[1] if "gguf_init_from_file_ptr" in r.getMessage()]
    assert noise, "the engine no longer logs the fallback: this test has nothing to check"
    assert all(r.levelno == logging.DEBUG for r in noise)


def test_the_cli_refuses_a_bad_output_or_image_before_loading(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`qvac-nb video` checks what it can before a multi-GB load: the output's format and the image files."""
    from qvac_nb import cli

    model = str(tmp_path / "never-loaded.gguf")
    assert cli.main(["video", "a cat", "-m", model, "-o", str(tmp_path / "clip.gif")]) == cli.EXIT_USAGE
    assert "must end in .mp4 or .webp" in capsys.readouterr().err
    assert cli.main(["video", "a cat", "-m", model, "-o", str(tmp_path / "clip.mp4"),
                     "--end-image", str(tmp_path / "nope.png")]) == cli.EXIT_USAGE
    assert "--end-image: no image file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # argparse's own usage error
        cli.main(["video", "a cat", "-m", model, "-o", str(tmp_path / "clip.mp4"), "--frames", "x"])
    assert exited.value.code == cli.EXIT_USAGE
