"""Write the front-end tests' family fixture (js/tests/fixtures/families.json), or check it is current.

    python tools/gen_family_fixture.py          # rewrite the fixture
    python tools/gen_family_fixture.py --check  # exit 1 when it drifted from what the kernel derives

The fixture holds what the kernel sends the Studio's front-end for a few made-up family rows, one
per kind of row the table has or will have (SDEdit, guidance-distilled, real cfg, edit, reference,
inpainting, instruct-pix2pix, no init image): each row's form rules (`form_rules` trait) and the
companions the model bar asks for (`source_info.companions`), computed by qvac_nb/widgets/family_form.py.
The rows are made up so that adding a real family to the table does not change the fixture.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qvac_nb.families import Family  # noqa: E402
from qvac_nb.widgets.family_form import companion_fields, companion_needs, form_rules  # noqa: E402

FIXTURE = ROOT / "js" / "tests" / "fixtures" / "families.json"
_TEXT = ("clip_l_model_src", "t5_xxl_model_src")
_SPLIT_FLUX = {"text_encoders": _TEXT, "required_companions": ("vae_model_src",), "requires_text_encoder": True,
               "split_layout": True}
_SPLIT_LLM = {"text_encoders": ("llm_model_src",), "required_companions": ("llm_model_src", "vae_model_src"),
              "split_layout": True}


def _d(**values: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(values)


ROWS = (
    Family("sdedit", "SDEdit U-Net", "unet", size_multiple=64, text_encoders=("clip_l_model_src",),
           hidden=("guidance",)),
    Family("distilled", "Guidance-distilled DiT", "dit", uses_guidance=True, defaults=_d(cfg_scale=1.0), **_SPLIT_FLUX),
    Family("realcfg", "Real-cfg DiT", "dit", defaults=_d(cfg_scale=4.0), hidden=("guidance",), **_SPLIT_LLM),
    Family("edit", "Edit DiT", "dit", uses_guidance=True, defaults=_d(cfg_scale=1.0, guidance=2.5), img2img="edit",
           **_SPLIT_FLUX),
    Family("reference", "Reference DiT", "dit", uses_guidance=True, defaults=_d(cfg_scale=1.0), size_multiple=16,
           img2img="reference", **_SPLIT_LLM),
    Family("inpaint", "Inpainting DiT", "dit", uses_guidance=True, defaults=_d(cfg_scale=1.0, guidance=30.0,
           strength=1.0), inpaints=True, **_SPLIT_FLUX),
    Family("pix2pix", "Instruct-pix2pix", "unet", size_multiple=64, img2img="pix2pix", hidden=("guidance",),
           shows=("img_cfg_scale",)),
    Family("noinit", "Text-only DiT", "dit", img2img="none", hidden=("guidance",)),
)


def fixture() -> dict[str, Any]:
    """{"companion_fields": [...], "families": {name: {label, form_rules, companions}}} for ROWS."""
    fields = companion_fields(ROWS)
    return {
        "companion_fields": fields,
        "families": {row.name: {"label": row.label, "form_rules": form_rules(row.as_json()),
                                "companions": companion_needs(row, fields)} for row in ROWS},
    }


def text() -> str:
    return json.dumps(fixture(), indent=1) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        if not FIXTURE.exists() or FIXTURE.read_text(encoding="utf-8") != text():
            print(f"{FIXTURE.relative_to(ROOT)} drifted; run: python tools/gen_family_fixture.py", file=sys.stderr)
            return 1
        return 0
    FIXTURE.write_text(text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
