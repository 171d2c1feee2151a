"""Textual-inversion embeddings: model_config["embeddings"], used by name in the prompt.

The engine takes embeddings when it creates the model's context (sd_embedding_t name + path) and swaps a
name it finds in the prompt for the file's vectors. The peer (stable-diffusion-cpp-python's own
StableDiffusion(embedding_paths=...)) loading the same files is the oracle.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import pixels
from testmodels.embedding import write_embedding

import qvac_nb
from qvac_nb import embeddings, models

KW = {"seed": 7, "sampling_method": "euler_a", "scheduler": "discrete", "eta": 0.0, "width": 64, "height": 64,
      "steps": 2, "cfg_scale": 7.0}


def _generate(model_id: str, prompt: str) -> np.ndarray:
    (png,) = qvac_nb.diffusion(model_id=model_id, prompt=prompt, **KW).outputs.result(timeout=300)
    return pixels(png)


def test_a_prompt_naming_an_embedding_draws_with_its_vectors_as_the_peer_does(sd1_model, sd1_id: str,
                                                                              tmp_path: Path) -> None:
    from conftest import THREADS

    # Both layouts the engine reads: kohya's safetensors and A1111's .pt, named after their files.
    first = write_embedding(tmp_path / "qvacstyle.safetensors", seed="first")
    second = write_embedding(tmp_path / "otherstyle.pt", vectors=3, seed="second")
    model_id = models.load_copy(str(sd1_model.primary),
                                model_config={"threads": THREADS, "embeddings": [str(first), str(second)]})
    try:
        with_first = _generate(model_id, "a qvacstyle boat")
        with_second = _generate(model_id, "a otherstyle boat")
    finally:
        qvac_nb.unload_model(model_id=model_id)
    # Without the embeddings loaded, the same words are plain text split into word pieces.
    assert not np.array_equal(with_first, _generate(sd1_id, "a qvacstyle boat"))
    assert not np.array_equal(with_second, _generate(sd1_id, "a otherstyle boat"))
    assert not np.array_equal(with_first, with_second)

    out = tmp_path / "peer.npy"
    code = f"""
        import numpy as np
        from pathlib import Path
        from stable_diffusion_cpp import StableDiffusion
        from stable_diffusion_cpp.stable_diffusion_cpp import sd_embedding_t
        paths = [{str(first)!r}, {str(second)!r}]
        # 0.4.7 builds its embedding array from self._embedding_items, which it never sets (its own list is a
        # local of the same name): give the class the same items it builds, or embedding_paths raises.
        StableDiffusion._embedding_items = [sd_embedding_t(name=Path(p).stem.encode(), path=p.encode())
                                            for p in paths]
        sd = StableDiffusion(model_path={str(sd1_model.primary)!r}, embedding_paths=paths, n_threads={THREADS},
                             rng_type="cuda", verbose=False)
        images = [sd.generate_image(prompt=prompt, width=64, height=64, sample_steps=2, cfg_scale=7.0, seed=7,
                                    sample_method="euler_a", scheduler="discrete")[0]
                  for prompt in ("a qvacstyle boat", "a otherstyle boat")]
        np.save({str(out)!r}, np.stack([np.asarray(img.convert("RGB")) for img in images]))
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    peer = np.load(out)
    assert np.array_equal(with_first, peer[0]) and np.array_equal(with_second, peer[1])


def test_the_forms_and_names_of_the_value(tmp_path: Path) -> None:
    assert embeddings.check(None) is None and embeddings.check([]) is None
    assert embeddings.check("a/b/my-style.safetensors") == {"my-style": "a/b/my-style.safetensors"}
    assert embeddings.check([tmp_path / "x.pt", "hf://o/r/y.safetensors@main"]) == {
        "x": str(tmp_path / "x.pt"), "y": "hf://o/r/y.safetensors@main"}
    assert embeddings.check({"Sks": "a.pt"}) == {"Sks": "a.pt"}
    for bad, error, words in (({"two words": "a.pt"}, qvac_nb.InvalidParameterError, "without spaces"),
                              (["a/Foo.pt", "b/foo.safetensors"], qvac_nb.InvalidParameterError, "given twice"),
                              (7, qvac_nb.InvalidTypeError, "a {name: source} dict"),
                              ([7], qvac_nb.InvalidTypeError, "entry 0"),
                              ({"x": ""}, qvac_nb.InvalidParameterError, "empty")):
        with pytest.raises(error) as caught:
            embeddings.check(bad)
        assert caught.value.param == "model_config.embeddings" and words in str(caught.value), bad
    with pytest.raises(qvac_nb.UnsupportedOperationError, match="FLUX.2 models do not read"):
        embeddings.resolve({"x": "x.pt"}, "flux2", "FLUX.2", lambda src, where: Path(src))


def test_files_the_engine_would_misread_are_refused_before_the_load(sd1_model, tmp_path: Path) -> None:
    model = str(sd1_model.primary)
    cases = (
        (write_embedding(tmp_path / "half.safetensors", dtype="f16"), qvac_nb.UnsupportedOperationError,
         "only as float32"),
        (write_embedding(tmp_path / "wide.safetensors", width=1024), qvac_nb.UnsupportedOperationError,
         "no token vectors 768 wide"),
        (tmp_path / "missing.safetensors", qvac_nb.ModelFileError, "not found"),
    )
    for path, error, words in cases:
        with pytest.raises(error) as caught:
            qvac_nb.load_model(model, model_config={"embeddings": [str(path)]})
        assert str(caught.value).startswith(f"model_config.embeddings.{path.stem}: "), str(caught.value)
        assert words in str(caught.value)
