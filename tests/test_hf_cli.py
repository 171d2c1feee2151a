"""`qvac-nb models`: what is cached where, and `--delete NAME` to free it (run as a subprocess, no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qvac_nb.catalog import CATALOG

ENTRY = CATALOG["SD_V2_1_1B_Q4_0"]  # a Hugging Face entry pinned to a commit


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    child_env.update(env, HF_HUB_OFFLINE="1")  # a request would fail the test instead of leaving the machine
    return subprocess.run([sys.executable, "-m", "qvac_nb", *args], capture_output=True, text=True, timeout=120,
                          env=child_env)


def _in_hub(hub: Path) -> Path:
    """The entry's file laid out as huggingface_hub lays it out; sparse: the right size without the bytes."""
    folder = hub / f"models--{str(ENTRY.repo).replace('/', '--')}"
    blob = folder / "blobs" / ENTRY.sha256
    blob.parent.mkdir(parents=True)
    with open(blob, "wb") as fh:
        fh.truncate(ENTRY.size)
    snapshot = folder / "snapshots" / str(ENTRY.revision) / str(ENTRY.path)
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return snapshot


def test_models_lists_hub_files_and_delete_frees_them(tmp_path: Path) -> None:
    env = {"QVAC_NB_CACHE": str(tmp_path / "cache"), "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HOME": str(tmp_path / "hfhome")}
    snapshot = _in_hub(tmp_path / "hub")
    table = _cli("models", env=env)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith(f"{ENTRY.name} "))
    assert row.rstrip().endswith("yes")
    assert f"{ENTRY.name}  2.2 GB  {snapshot}" in table.stdout  # where it is cached
    assert f"hub cache: {tmp_path / 'hub'}" in table.stdout and f"cache folder: {tmp_path / 'cache'}" in table.stdout
    listing = json.loads(_cli("models", "--json", env=env).stdout)
    assert {r["name"]: r["cached"] for r in listing["catalog"]}[ENTRY.name] == str(snapshot)
    assert listing["hub_cache"] == str(tmp_path / "hub")

    deleted = _cli("models", "--delete", ENTRY.name, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted {ENTRY.name}"
    assert not snapshot.is_symlink() and not snapshot.parent.exists()
    assert not any(p.is_file() for p in (tmp_path / "hub").rglob("*"))  # the blob went too
    again = _cli("models", "--delete", ENTRY.name, env=env)
    assert again.returncode == 1 and "is not cached" in again.stderr


def test_delete_of_an_unknown_name_suggests_the_closest(tmp_path: Path) -> None:
    env = {"QVAC_NB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hfhome")}
    result = _cli("models", "--delete", "SD_V2_1_1B_Q4", env=env)
    assert result.returncode == 2
    assert "did you mean 'SD_V2_1_1B_Q4_0'" in result.stderr and "Traceback" not in result.stderr
