"""`qvac-nb info` and `qvac-nb models`: what they say about the engine build and the cache folder is true."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from qvac_nb import engine

ENGINE_PACKAGE = "stable-diffusion-cpp-python"


def qvac_nb_cmd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qvac_nb", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def library_strings(library: Path, *symbols: str) -> dict[str, str | None]:
    """What the engine library's `const char *f(void)` functions return, asked in a separate process (this
    one never opens the engine)."""
    script = ("import ctypes, json, sys\n"
              "lib = ctypes.CDLL(sys.argv[1])\n"
              "out = {}\n"
              "for name in sys.argv[2:]:\n"
              "    f = getattr(lib, name, None)\n"
              "    if f is not None:\n"
              "        f.restype = ctypes.c_char_p\n"
              "    out[name] = f().decode() if f is not None else None\n"
              "print(json.dumps(out))\n")
    result = subprocess.run([sys.executable, "-c", script, str(library), *symbols], capture_output=True, text=True,
                            timeout=60, check=True)
    return json.loads(result.stdout)


def fill_cache(cache: Path, outside: Path) -> int:
    """A cache folder of files of known sizes, as qvac_nb and other tools leave it; returns the bytes it uses."""
    (cache / "url" / "0123456789abcdef").mkdir(parents=True)
    (cache / "url" / "0123456789abcdef" / "model.gguf").write_bytes(b"m" * 2000)
    (cache / "url" / "0123456789abcdef" / "other.gguf.part").write_bytes(b"p" * 500)  # a download cut short
    (cache / "test-models" / "sd1").mkdir(parents=True)
    (cache / "test-models" / "sd1" / "model.safetensors").write_bytes(b"t" * 1000)
    os.link(cache / "test-models" / "sd1" / "model.safetensors", cache / "test-models" / "same-file")  # counts once
    outside.write_bytes(b"o" * 10_000)
    (cache / "test-models" / "elsewhere").symlink_to(outside)  # lives outside the folder: not counted
    return 2000 + 500 + 1000


def test_info_says_what_the_engine_build_records_and_what_the_cache_uses(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    used = fill_cache(cache, tmp_path / "outside.bin")
    env = {"QVAC_NB_CACHE": str(cache), "HF_HUB_CACHE": str(tmp_path / "hub")}
    result = qvac_nb_cmd("info", "--json", env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)

    package = f"{ENGINE_PACKAGE} {importlib.metadata.version(ENGINE_PACKAGE)}"
    if os.environ.get(engine.LIBRARY_ENV):  # another build in use: the package is named, but as not in use
        package += f" (not in use: {engine.LIBRARY_ENV} is set)"
    assert info["engine package"] == package
    truth = library_strings(Path(info["engine library"]), "sd_version", "sd_commit", "ggml_version")
    for key, symbol in (("engine version", "sd_version"), ("engine commit", "sd_commit"),
                        ("ggml version", "ggml_version")):
        # The build's own string, or null where the build left its "unknown" placeholder.
        expected = truth[symbol] if truth[symbol] not in (None, "", "unknown") else None
        assert info[key] == expected, (key, truth)
    assert info["cache folder"] == str(cache) and info["cache folder bytes"] == used

    text = qvac_nb_cmd("info", env=env)
    assert text.returncode == 0, text.stderr
    lines = dict(line.split(":", 1) for line in text.stdout.splitlines())
    assert "unknown" not in text.stdout
    for key in ("engine version", "engine commit", "ggml version"):
        shown = lines[key].strip()
        assert shown == (info[key] or "not recorded by the engine build"), (key, shown)
    assert lines["cache folder"].strip() == f"{cache} (3.5 KB used)"


def test_models_reports_the_bytes_under_the_cache_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fill_cache(cache, tmp_path / "outside.bin")
    result = qvac_nb_cmd("models", env={"QVAC_NB_CACHE": str(cache), "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert result.returncode == 0, result.stderr
    assert f"cache folder: {cache} (3.5 KB used)" in result.stdout.splitlines()
