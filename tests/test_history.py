"""The history folder: saving, reading back newest first, the index's failure modes, keys."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

import qvac_nb
from qvac_nb import history_folder as hist
from qvac_nb.png import encode_png


def _png(seed: int, prompt: str = "a cat") -> tuple[bytes, dict]:
    params = {"prompt": prompt, "seed": seed, "steps": 2, "model": "m.gguf"}
    pixels = np.full((8, 8, 3), seed % 256, dtype=np.uint8)
    return encode_png(pixels, params), params


def test_saved_images_come_back_newest_first_with_their_parameters(tmp_path: Path) -> None:
    for seed in (1, 2, 3):
        hist.save(*_png(seed), tmp_path)
    records = qvac_nb.history(tmp_path)
    assert [r.parameters["seed"] for r in records] == [3, 2, 1]
    assert all(r.path.parent == tmp_path and r.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for r in records)
    assert qvac_nb.read_parameters(records[0].path)["seed"] == 3


def test_prompt_filter_and_limit(tmp_path: Path) -> None:
    hist.save(*_png(1, "A red Fox"), tmp_path)
    hist.save(*_png(2, "a blue whale"), tmp_path)
    assert [r.parameters["seed"] for r in hist.history(tmp_path, prompt="fox")] == [1]
    assert len(hist.history(tmp_path, limit=1)) == 1


def test_png_files_without_index_and_deleted_files(tmp_path: Path) -> None:
    a = hist.save(*_png(1), tmp_path)
    hist.save(*_png(2), tmp_path)
    a.path.unlink()  # deleted by hand: its index line is skipped
    png, _ = _png(9)
    (tmp_path / "copied.png").write_bytes(png)  # copied in by hand: read from its own record
    (tmp_path / "other.png").write_bytes(b"not a png")  # not ours: ignored
    escape = {"file": "../escape.png", "created": "2026-01-01T00:00:00+00:00", "parameters": {}}
    with (tmp_path / hist.INDEX_NAME).open("a") as index:
        index.write('{"torn": \n["file", 1]\n' + json.dumps(escape) + "\n")
    seeds = sorted(r.parameters["seed"] for r in hist.history(tmp_path))
    assert seeds == [2, 9]


def test_missing_folder_is_empty_and_bad_folder_type_is_named(tmp_path: Path) -> None:
    assert hist.history(tmp_path / "nothing") == []
    with pytest.raises(qvac_nb.InvalidTypeError, match="output_dir"):
        hist.history(3)  # type: ignore[arg-type]


def test_keys_identify_parameters_and_concurrent_saves_keep_every_line(tmp_path: Path) -> None:
    _, params = _png(1)
    assert hist.item_key(params) == hist.item_key(dict(reversed(list(params.items()))))
    assert hist.item_key(params) != hist.item_key({**params, "seed": 2})
    threads = [threading.Thread(target=hist.save, args=(*_png(i), tmp_path), kwargs={"key": f"k{i}"})
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    lines = (tmp_path / hist.INDEX_NAME).read_text().splitlines()
    assert len(lines) == 16 and all(json.loads(line)["file"] for line in lines)
    assert sorted(hist.done_keys(tmp_path)) == sorted(f"k{i}" for i in range(16))
    assert len(list(tmp_path.glob("*.png"))) == 16
