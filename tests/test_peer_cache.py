"""The peer oracle's saved outputs are keyed by everything that decides them (tests/peer.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from peer import cached_outputs, peer_key


def test_a_peer_output_is_reused_only_for_the_same_inputs_and_arguments(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QVAC_NB_TEST_MODELS", str(tmp_path / "cache"))
    image = tmp_path / "init.png"
    image.write_bytes(b"one")
    key = peer_key("images", {"init": image}, [{"prompt": "a", "seed": 7}])
    assert key == peer_key("images", {"init": image}, [{"seed": 7, "prompt": "a"}])
    assert key != peer_key("images", {"init": image}, [{"prompt": "b", "seed": 7}])
    assert key != peer_key("video", {"init": image}, [{"prompt": "a", "seed": 7}])
    image.write_bytes(b"two")  # another input file's bytes: another run
    assert key != peer_key("images", {"init": image}, [{"prompt": "a", "seed": 7}])

    frames = [np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3), np.zeros((3, 3, 3), np.uint8)]
    runs: list[int] = []

    def run() -> list[np.ndarray]:
        runs.append(1)
        return frames

    first = cached_outputs("images", {"init": image}, {"prompt": "a"}, run)
    again = cached_outputs("images", {"init": image}, {"prompt": "a"}, run)
    assert len(runs) == 1 and all(np.array_equal(a, b) for a, b in zip(again, frames, strict=True)) and first is frames
    cached_outputs("images", {"init": image}, {"prompt": "b"}, run)  # other arguments: the peer runs
    assert len(runs) == 2
    monkeypatch.setenv("QVAC_NB_PEER_CACHE", "0")
    cached_outputs("images", {"init": image}, {"prompt": "a"}, run)  # the switch runs the peer every time
    assert len(runs) == 3
