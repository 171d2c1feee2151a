"""The benchmark command still runs: `benchmarks/run.py --quick` writes a well-formed results table.

Not a timed test: --quick uses tiny sizes, cfg 1 and one repeat, and writes to a temporary path so
the committed benchmarks/RESULTS.md is never overwritten.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "benchmarks" / "run.py"
SECTIONS = {"1", "2", "3", "4", "5", "6", "7"}


@pytest.mark.timeout(900)
def test_quick_benchmark_writes_a_well_formed_table(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    before = (
        (REPO / "benchmarks" / "RESULTS.md").read_bytes() if (REPO / "benchmarks" / "RESULTS.md").exists() else None
    )
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=850,
        cwd=str(tmp_path),
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# qvac_nb benchmarks")
    assert "--quick" in text and "## Machine and versions" in text and "## Errors" not in text

    table = text.split("## Summary", 1)[1].split("## Details", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert rows[0] == "| # | figure | measured | goal | met | notes |"
    assert set(rows[1].replace("|", "")) == {"-"}
    body = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]
    assert all(len(cells) == 6 for cells in body), "a row has the wrong number of cells"
    assert {cells[0] for cells in body} == SECTIONS, "every section reports at least one row"
    assert all(cells[4] in ("yes", "no", "info", "n/a") for cells in body)
    # Figures are numbers, not NaN from an empty series.
    assert not any("nan" in cells[2].lower() for cells in body)
    e2e = next(cells for cells in body if cells[1].startswith("end-to-end qvac_nb / peer"))
    assert re.fullmatch(r"\d+\.\d{3}", e2e[2])
    assert "identical" in e2e[5], "qvac_nb and the peer should give the same pixels for identical parameters"
    load_only = [cells for cells in body if "load only" in cells[1]]
    assert len(load_only) == 3 and all(re.fullmatch(r"x\d+\.\d{3}|[+-]\d+\.\d %", c[2]) for c in load_only), load_only
    browser = next(cells for cells in body if "Chromium" in cells[1])
    if Path("/usr/bin/chromium").exists():
        assert re.fullmatch(r"p50 [\d.]+ ms, p95 [\d.]+ ms", browser[2]), browser
    after = (REPO / "benchmarks" / "RESULTS.md").read_bytes() if (REPO / "benchmarks" / "RESULTS.md").exists() else None
    assert before == after, "--out must leave benchmarks/RESULTS.md alone"
