"""The model catalogue: the named models a user can pass as `model_src`.

The facts (where each file is published, its size and SHA-256) live in `catalog.json`
next to this module. Each name is also exported as a constant whose value is the name
itself, so `qvac_nb.SD_V2_1_1B_Q8_0 == "SD_V2_1_1B_Q8_0"`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from posixpath import basename
from typing import Any

from .errors import UnknownModelError, suggest

HF_URL = "https://huggingface.co"


@dataclass(frozen=True)
class ModelEntry:
    """One downloadable model file.

    `companions` maps model_config keys (e.g. "llm_model_src") to the names of the other
    entries a split model needs; `default_config` holds load options the model requires
    (e.g. {"prediction": "v"} for SD 2.x). Treat both dicts as read-only: copy before changing.
    `source` is "hf" (then `repo`, `revision` and `path` are set) or "url".
    """

    name: str
    family: str
    role: str
    url: str
    filename: str
    size: int
    sha256: str
    notes: str = ""
    companions: dict[str, str] = field(default_factory=dict, hash=False)
    default_config: dict[str, Any] = field(default_factory=dict, hash=False)
    source: str = "url"
    repo: str | None = None
    revision: str | None = None
    path: str | None = None

    @property
    def hf_uri(self) -> str | None:
        """The `hf://owner/repo/path@revision` form of a Hugging Face entry, else None."""
        if self.source != "hf":
            return None
        return f"hf://{self.repo}/{self.path}@{self.revision}"


def _entry_from_facts(facts: dict[str, Any]) -> ModelEntry:
    """A ModelEntry from one record of catalog.json."""
    if facts["source"] == "hf":
        url = f"{HF_URL}/{facts['repo']}/resolve/{facts['revision']}/{facts['path']}"
        filename = basename(facts["path"])
    else:
        url = facts["url"]
        filename = basename(url.split("?", 1)[0])
    return ModelEntry(
        name=facts["name"],
        family=facts["family"],
        role=facts["role"],
        url=url,
        filename=filename,
        size=int(facts["size"]),
        sha256=facts["sha256"].lower(),
        notes=facts.get("notes", ""),
        companions=dict(facts.get("companions", {})),
        default_config=dict(facts.get("default_config", {})),
        source=facts["source"],
        repo=facts.get("repo"),
        revision=facts.get("revision"),
        path=facts.get("path"),
    )


def _load_catalog() -> dict[str, ModelEntry]:
    text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    entries = (_entry_from_facts(facts) for facts in json.loads(text)["models"])
    return {entry.name: entry for entry in entries}


CATALOG: dict[str, ModelEntry] = _load_catalog()

# name -> name: the values of the public model constants (qvac_nb.SD_V2_1_1B_Q8_0 == "SD_V2_1_1B_Q8_0").
CONSTANTS: dict[str, str] = {name: name for name in CATALOG}


def get_entry(name: str | ModelEntry) -> ModelEntry:
    """The catalogue entry called `name`; UnknownModelError (a KeyError) suggests the closest name."""
    if isinstance(name, ModelEntry):
        return name
    try:
        return CATALOG[name]
    except (KeyError, TypeError):
        raise UnknownModelError(
            f"unknown model {name!r}{suggest(str(name), CATALOG)}; known models: {', '.join(CATALOG)}"
        ) from None
