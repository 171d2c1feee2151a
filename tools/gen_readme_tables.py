"""Regenerate README.md's API tables from the parameter tables, or check that they are current.

    python tools/gen_readme_tables.py          # rewrite the tables between the schema markers
    python tools/gen_readme_tables.py --check  # exit 1 when README.md drifted from the tables
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's tables, also when an older qvac_nb is installed

from qvac_nb import schema, video_schema  # noqa: E402


def readme_table(params: Sequence[schema.Param]) -> str:
    """One README table: a row per parameter with its doc, values and default."""
    rows = ["| Parameter | Values | Default |", "|---|---|---|"]
    for p in params:
        values = p.values_text().replace("|", "\\|")
        shown = f" Values: {values}" if values else ""  # an image's doc already says what it takes
        rows.append(f"| `{p.name}` | {p.doc}{shown} | {p.default_text()} |")
    return "\n".join(rows)


README_TABLES = {"diffusion": schema.DIFFUSION, "upscale": schema.UPSCALE, "model_config": schema.MODEL_CONFIG,
                 "upscaler": schema.UPSCALER, "hires": schema.HIRES, "video": video_schema.VIDEO}
_MARKER = re.compile(r"(<!-- BEGIN schema:(\w+) -->\n)(.*?)(<!-- END schema:\2 -->)", re.S)


def render_readme(text: str, tables: Mapping[str, Sequence[schema.Param]] = README_TABLES) -> str:
    """README text with every `<!-- BEGIN schema:NAME -->` ... `<!-- END schema:NAME -->` block regenerated."""
    return _MARKER.sub(lambda m: f"{m.group(1)}{readme_table(tables[m.group(2)])}\n{m.group(4)}", text)


def main(argv: Iterable[str] | None = None, tables: Mapping[str, Sequence[schema.Param]] = README_TABLES) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    readme = ROOT / "README.md"
    if args[:1] == ["--readme"]:
        readme.write_text(render_readme(readme.read_text(encoding="utf-8"), tables), encoding="utf-8")
        return 0
    if args[:1] == ["--check"]:
        text = readme.read_text(encoding="utf-8")
        if render_readme(text, tables) != text:
            print("README.md API tables drifted; run: python tools/gen_readme_tables.py", file=sys.stderr)
            return 1
        return 0
    print("usage: python tools/gen_readme_tables.py [--readme | --check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["--readme"]))
