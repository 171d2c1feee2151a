"""Model detection agrees with the engine's: every version it knows, from header-only files.

Each file is a safetensors header with the tensor names and shapes a published model of that
version carries (only those the engine and qvac_nb look at, plus what the structure checks
need) over sparse zero data: a few kilobytes on disk whatever the shapes say. qvac_nb's
detection is checked for all of them, and the engine itself is asked about each, by loading
the file in a separate process with the peer package and reading the version its loader
logs (the process ends right there, before any weight is read: about 0.2 s a file).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterable
from pathlib import Path

import pytest
from reliability_files import st_tensors, write_st
from testmodels import ernie_image, flux1, flux2

from qvac_nb import families
from qvac_nb.errors import CorruptModelError
from qvac_nb.modelfiles.detection import ENGINE_VERSIONS, Detection, detect_family, detect_version
from qvac_nb.modelfiles.reading import inspect_file

Spec = list[tuple[str, tuple[int, ...]]]
UNET, VAE = "model.diffusion_model.", "first_stage_model."
SD1_TOKENS = ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", (49408, 768))
SD2_TOKENS = ("cond_stage_model.model.token_embedding.weight", (49408, 1024))
SDXL_TOKENS = [("conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight", (49408, 768)),
               ("conditioner.embedders.1.model.token_embedding.weight", (49408, 1280))]


def _vae(prefix: str = VAE, z: int = 4) -> Spec:
    return [(prefix + "decoder.conv_in.weight", (512, z, 3, 3)), (prefix + "decoder.conv_out.weight", (3, 128, 3, 3))]


def _unet(in_ch: int = 4, *, middle: bool = True, out71: bool = True, out311: bool = True, to_k: int = 640,
          xl: bool = False) -> Spec:
    """An ldm U-Net checkpoint's tell-tale tensors: first conv (input channels), middle block, output blocks."""
    spec = [(UNET + "input_blocks.0.0.weight", (320, in_ch, 3, 3)), (UNET + "time_embed.0.weight", (1280, 320)),
            (UNET + "out.2.weight", (4, 320, 3, 3))]
    if middle:
        spec.append((UNET + "middle_block.1.proj_in.weight", (1280, 1280)))
    if out71:
        spec.append((UNET + "output_blocks.7.1.transformer_blocks.0.attn1.to_k.weight", (640, to_k)))
    if out311:
        spec.append((UNET + "output_blocks.3.1.transformer_blocks.1.attn1.to_k.weight", (1280, 1280)))
    if xl:
        spec.append((UNET + "label_emb.0.0.weight", (1280, 2816)))
    return spec


def _sd1(**kw: object) -> Spec:
    return [SD1_TOKENS, *_unet(**kw), *_vae()]  # type: ignore[arg-type]


def _sd2(**kw: object) -> Spec:
    return [SD2_TOKENS, *_unet(**kw), *_vae()]  # type: ignore[arg-type]


def _sdxl(**kw: object) -> Spec:
    return [*SDXL_TOKENS, *_unet(xl=True, **kw), *_vae()]  # type: ignore[arg-type]


def _named(specs: Iterable[flux1.TensorSpec]) -> Spec:
    return [(s.name, s.shape) for s in specs]


def _flux(**kw: object) -> Spec:
    return _named(flux1.dit_tensors(**kw))  # type: ignore[arg-type]


def _radiance() -> Spec:
    """Chroma Radiance: Chroma's DiT on 16x16 pixel patches, decoded by NeRF blocks (no VAE, no final_layer)."""
    spec = [(n, s) for n, s in _flux(chroma=True) if not n.startswith(("img_in.", "final_layer."))]
    return spec + [("img_in_patch.weight", (flux1.HIDDEN, 3, 16, 16)), ("nerf_blocks.0.norm.scale", (64,)),
                   ("nerf_final_layer_conv.norm.scale", (64,)), ("nerf_final_layer_conv.conv.weight", (3, 64, 3, 3))]


def _ovis() -> Spec:
    """Ovis-Image: FLUX's DiT with gated ("yak") MLPs, no pooled-text input and a normed text stream."""
    out: Spec = [("txt_norm.scale", (4096,))]
    for name, shape in _flux():
        if name.startswith("vector_in."):
            continue
        if ".img_mlp." in name or ".txt_mlp." in name:
            if name.endswith("mlp.0.weight"):
                stem = name[: -len("0.weight")]
                out += [(stem + "gate_proj.weight", shape), (stem + "up_proj.weight", shape),
                        (stem + "down_proj.weight", shape[::-1])]
            continue
        out.append((name, shape))
    return out


def _flux2(single: int) -> Spec:
    return _named(flux2.dit_tensors(256, 1, single, 64))


def _wan(patch: tuple[int, ...], img_emb: bool = False) -> Spec:
    spec = [("patch_embedding.weight", patch), ("blocks.0.cross_attn.norm_k.weight", (patch[0],))]
    return spec + ([("img_emb.proj.1.weight", (patch[0], 1280))] if img_emb else [])


# (test id, file name, tensors, expected engine version, expected qvac_nb family, variant)
CASES: list[tuple[str, str, Spec, str, str, str]] = [
    ("sd1", "sd1.safetensors", _sd1(), "SD1", "sd1", ""),
    ("sd1_inpaint", "sd1-inpainting.safetensors", _sd1(in_ch=9), "SD1_INPAINT", "sd1", "inpaint"),
    ("sd1_pix2pix", "ip2p.safetensors", _sd1(in_ch=8), "SD1_PIX2PIX", "sd1", "pix2pix"),
    ("sd1_tiny", "bk-sdm-tiny.safetensors", _sd1(middle=False), "SD1_TINY_UNET", "sd1", "tiny_unet"),
    ("sdxs_512", "sdxs-512.safetensors", _sd1(middle=False, out71=False), "SDXS_512_DS", "sd1", "sdxs"),
    ("sd2", "sd2.safetensors", _sd2(), "SD2", "sd2", ""),
    ("sd2_inpaint", "sd2-inpainting.safetensors", _sd2(in_ch=9), "SD2_INPAINT", "sd2", "inpaint"),
    ("sd2_tiny", "sd2-tiny.safetensors", _sd2(middle=False), "SD2_TINY_UNET", "sd2", "tiny_unet"),
    ("sdxs_09", "sdxs-09.safetensors", _sd2(middle=False, to_k=1024), "SDXS_09", "sd2", "sdxs"),
    ("sdxl", "sdxl.safetensors", _sdxl(), "SDXL", "sdxl", ""),
    ("sdxl_inpaint", "sdxl-inpainting.safetensors", _sdxl(in_ch=9), "SDXL_INPAINT", "sdxl", "inpaint"),
    ("sdxl_pix2pix", "sdxl-ip2p.safetensors", _sdxl(in_ch=8), "SDXL_PIX2PIX", "sdxl", "pix2pix"),
    ("vega", "vega.safetensors", _sdxl(middle=False, out311=False), "SDXL_VEGA", "sdxl", "vega"),
    ("ssd1b", "ssd-1b.safetensors", _sdxl(middle=False), "SDXL_SSD1B", "sdxl", "ssd1b"),
    ("svd", "svd.safetensors", [*_sd2(), (UNET + "input_blocks.8.0.time_mixer.mix_factor", (1,))], "SVD", "svd", ""),
    ("sd3", "sd3.safetensors", [(UNET + "joint_blocks.0.x_block.attn.qkv.weight", (4608, 1536)),
                                (UNET + "x_embedder.proj.weight", (1536, 16, 2, 2)),
                                (UNET + "context_embedder.weight", (1536, 4096)),
                                (UNET + "final_layer.linear.weight", (64, 1536)), *_vae(z=16)], "SD3", "sd3", ""),
    ("flux_dev", "flux1-dev.safetensors", _flux(), "FLUX", "flux", ""),
    ("flux_schnell", "flux1-schnell.safetensors", _flux(guidance=False), "FLUX", "flux", "schnell"),
    ("flux_kontext", "flux1-kontext-dev.safetensors", _flux(), "FLUX", "flux_kontext", ""),
    ("flux_fill", "flux1-fill-dev.safetensors", _flux(img_in=384), "FLUX_FILL", "flux_fill", ""),
    ("flux_controls", "flux1-canny-dev.safetensors", _flux(img_in=128), "FLUX_CONTROLS", "flux_controls", ""),
    ("flex2", "flex.2-preview.safetensors", _flux(img_in=196), "FLEX_2", "flex2", ""),
    ("chroma", "chroma-unlocked-v40.safetensors", _flux(chroma=True), "FLUX", "chroma", ""),
    ("chroma_radiance", "chroma1-radiance.safetensors", _radiance(), "CHROMA_RADIANCE", "chroma_radiance", ""),
    ("wan2_1", "wan2.1-t2v-14b.safetensors", _wan((5120, 16, 1, 2, 2)), "WAN2", "wan", ""),
    ("wan2_1_i2v", "wan2.1-i2v-14b.safetensors", _wan((5120, 36, 1, 2, 2), img_emb=True), "WAN2", "wan", ""),
    ("wan2_2_i2v", "wan2.2-i2v-a14b.safetensors", _wan((5120, 36, 1, 2, 2)), "WAN2_2_I2V", "wan", "i2v"),
    ("wan2_2_ti2v", "wan2.2-ti2v-5b.safetensors", _wan((3072, 48, 1, 2, 2)), "WAN2_2_TI2V", "wan", "ti2v"),
    ("qwen_image", "qwen_image.safetensors", [("transformer_blocks.0.img_mod.1.weight", (18432, 3072)),
                                              ("img_in.weight", (3072, 64))], "QWEN_IMAGE", "qwen_image", ""),
    ("anima", "anima.safetensors", [("net.llm_adapter.blocks.0.cross_attn.q_proj.weight", (1024, 1024)),
                                    ("net.blocks.0.self_attn.q_proj.weight", (2048, 2048))], "ANIMA", "anima", ""),
    ("flux2_dev", "flux2-dev.safetensors", _flux2(48), "FLUX2", "flux2", "dev"),
    ("flux2_klein", "flux-2-klein-4b.safetensors", _flux2(1), "FLUX2_KLEIN", "flux2", "klein"),
    ("zimage", "z_image_turbo.safetensors", [("cap_embedder.0.weight", (2560,)), ("x_embedder.weight", (3840, 64))],
     "Z_IMAGE", "zimage", ""),
    ("ovis_image", "ovis_image.safetensors", _ovis(), "OVIS_IMAGE", "ovis_image", ""),
    ("ernie_image", "ernie-image.safetensors", _named(ernie_image.dit_tensors()), "ERNIE_IMAGE", "ernie_image", ""),
]


def _write(folder: Path, name: str, spec: Spec) -> Path:
    return write_st(folder / name, st_tensors((n, shape, "F32" if len(shape) == 1 else "F16") for n, shape in spec))


def test_every_engine_version_has_a_case() -> None:
    assert {case[3] for case in CASES} == set(ENGINE_VERSIONS)


@pytest.mark.parametrize(("file_name", "spec", "version", "family", "variant"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_detection_of_every_version(tmp_path: Path, file_name: str, spec: Spec, version: str, family: str,
                                    variant: str) -> None:
    path = _write(tmp_path, file_name, spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = inspect_file(path, "model_src")  # the structure checks of the family pass too
    assert info.detection == Detection(family, version, variant)
    assert info.family == family and detect_version(info.tensors) == version
    new = [w for w in caught if issubclass(w.category, RuntimeWarning) and "no settings for" in str(w.message)]
    if family in families.FAMILIES or family in families.VIDEO_FAMILIES:
        assert not new, "a family qvac_nb knows must load without the new-family warning"
    else:  # the engine runs it, qvac_nb does not know it yet: it loads, with a warning naming the version
        assert len(new) == 1 and f"VERSION_{version}" in str(new[0].message)
        assert families.get(family).kind != "unknown" and not families.get(family).defaults


def test_names_only_and_components() -> None:
    """Plain name lists (no shapes) and companion files keep their old answers."""
    assert detect_family(["enc.blk.0.attn_q.weight", "token_embd.weight"]) == "text_encoder"
    assert detect_family(["blk.0.attn_q.weight", "token_embd.weight"]) == "llm"
    assert detect_family(["double_stream_modulation_img.lin.weight", "double_blocks.0.x"]) == "flux2"
    assert detect_family(["double_blocks.0.img_attn.qkv.weight", "img_in.weight"]) == "flux"
    assert detect_family(["text_model.embeddings.token_embedding.weight", "text_model.encoder.layers.0.x"]) \
        == "text_encoder"  # a CLIP file alone is a companion, not an SD 1.x model
    assert detect_family(["input_blocks.0.0.weight", "label_emb.0.0.weight"]) == "sdxl"  # an SDXL U-Net alone
    assert detect_family(["decoder.conv_in.weight", "encoder.conv_in.weight"]) == "vae"
    # Kontext is told by its file name only; without one it is FLUX.1 dev.
    names = [n for n, _ in _flux()]
    assert detect_family(names) == "flux" and detect_family(names, "x/FLUX.1-Kontext-dev-Q8_0.gguf") == "flux_kontext"


def _companion_files(folder: Path) -> dict[str, Path]:
    llm = [("model.embed_tokens.weight", (1000, 64)), ("model.norm.weight", (64,))]
    llm += [(f"model.layers.0.{part}", (64,) if "norm" in part else (64, 64)) for part in (
        "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
        "input_layernorm.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "mlp.down_proj.weight")]
    clip = [("text_model.embeddings.token_embedding.weight", (49408, 768)),
            ("text_model.encoder.layers.0.self_attn.q_proj.weight", (768, 768))]
    specs = {
        "ae": _vae("", z=16) + [("encoder.conv_in.weight", (128, 3, 3, 3))],
        "sd_vae": _vae("", z=4) + [("encoder.conv_in.weight", (128, 3, 3, 3))],
        "clip_l": clip,
        "t5xxl": [("shared.weight", (32128, 4096)), ("encoder.block.0.layer.0.SelfAttention.q.weight", (4096, 4096))],
        "llm": llm,
        "flux": _flux(),
        "kontext": _flux(),
        "fill": _flux(img_in=384),
        "chroma": _flux(chroma=True),
        "zimage": [("cap_embedder.0.weight", (2560,)), ("x_embedder.weight", (3840, 64))],
    }
    names = {"kontext": "flux1-kontext-dev.safetensors"}
    return {key: _write(folder, names.get(key, f"{key}.safetensors"), spec) for key, spec in specs.items()}


def test_companions_follow_the_family_table(tmp_path: Path) -> None:
    from qvac_nb.errors import UnsupportedOperationError
    from qvac_nb.modelfiles.companions import check_companion

    files = {key: inspect_file(path) for key, path in _companion_files(tmp_path).items()}
    for dit in ("flux", "kontext", "fill"):
        for key, companion in (("vae_model_src", "ae"), ("clip_l_model_src", "clip_l"), ("t5_xxl_model_src", "t5xxl")):
            check_companion(files[dit], key, files[companion])
        with pytest.raises(UnsupportedOperationError, match="needs a SD3/FLUX.1 VAE"):
            check_companion(files[dit], "vae_model_src", files["sd_vae"])
        with pytest.raises(UnsupportedOperationError, match="FLUX.1.* models do not use this text encoder"):
            check_companion(files[dit], "llm_model_src", files["llm"])
    check_companion(files["chroma"], "t5_xxl_model_src", files["t5xxl"])
    with pytest.raises(UnsupportedOperationError, match="^model_config.clip_l_model_src: Chroma models do not use"):
        check_companion(files["chroma"], "clip_l_model_src", files["clip_l"])
    # A family only the engine knows gets the kind checks alone (its LLM is an LLM, its VAE a VAE).
    check_companion(files["zimage"], "llm_model_src", files["llm"])
    check_companion(files["zimage"], "vae_model_src", files["ae"])
    with pytest.raises(UnsupportedOperationError, match="is a text_encoder file, not an LLM"):
        check_companion(files["zimage"], "llm_model_src", files["t5xxl"])


def test_a_chroma_file_missing_its_approximator_is_refused(tmp_path: Path) -> None:
    spec = [(n, s) for n, s in _flux(chroma=True) if "distilled_guidance_layer.layers.4." not in n]
    with pytest.raises(CorruptModelError, match="not a complete Chroma diffusion model.*layers.4.in_layer"):
        inspect_file(_write(tmp_path, "chroma-cut.safetensors", spec), "model_src")


# ---------------------------------------------------------------- the engine's own answer

# The engine's log names the version as soon as its loader has read the headers; the child ends there.
_ASK_ENGINE = """
    import os, sys
    import stable_diffusion_cpp as sd

    @sd.sd_log_callback
    def on_log(level, text, _data):
        line = text.decode("utf-8", "replace")
        if "Version: " in line or "get sd version" in line:
            print("VERSION", line.split("Version: ", 1)[1].strip() if "Version: " in line else None, flush=True)
            os._exit(0)

    sd.sd_set_log_callback(on_log, None)
    path = sys.argv[1]
    key = "model_path" if sys.argv[2] == "model" else "diffusion_model_path"
    sd.StableDiffusion(**{key: path}, n_threads=1, verbose=True)
"""
@pytest.mark.parametrize(("file_name", "spec", "version", "family", "variant"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_the_engine_detects_the_same_version(tmp_path: Path, file_name: str, spec: Spec, version: str, family: str,
                                             variant: str) -> None:
    """The engine's log names our version (its own name for it: model_version_to_str in stable-diffusion.cpp)."""
    path = _write(tmp_path, file_name, spec)
    role = "model" if any(n.startswith((UNET, VAE)) for n, _ in spec) else "diffusion_model"  # as qvac_nb loads it
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_ASK_ENGINE), str(path), role],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == f"VERSION {Detection(family, version, variant).engine_label}", \
        (done.stdout, done.stderr[-2000:])
