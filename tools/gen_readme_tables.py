"""Regenerate README.md's API tables from qvac_nb/schema.py, or check that they are current.

    python tools/gen_readme_tables.py          # rewrite the tables between the schema markers
    python tools/gen_readme_tables.py --check  # exit 1 when README.md drifted from the schema
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qvac_nb import schema, video_schema  # noqa: E402

if __name__ == "__main__":
    sys.exit(schema.main(sys.argv[1:] or ["--readme"], video_schema.README_TABLES))
