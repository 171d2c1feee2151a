"""The custom messages between the widgets' front-end and the kernel, read from messages.json: the one list of
their `type` names, shared with the front-end (js/src/messages.js is generated from the same file by
tools/gen_js_messages.py).

A group is a class owning messages (a widget, its base class or a mixin): `frontend_sends` are the types the
front-end sends (`model.send`), which the kernel dispatches on; `kernel_sends` those the kernel sends
(`widget.send`). A widget's messages are its group's and those of the groups it `includes`.

This module imports nothing from qvac_nb (the generator loads it by its path).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

SOURCE = Path(__file__).with_name("messages.json")
# The group whose front-end messages ImageStore.answer takes before a widget's handler table is looked at.
STORE_GROUP = "ImageStore"


@dataclass(frozen=True)
class Group:
    """One group of messages: name -> one-line description, in each direction."""

    name: str
    python: str
    includes: tuple[str, ...]
    frontend_sends: Mapping[str, str]
    kernel_sends: Mapping[str, str]


def _names(value: Any, where: str) -> Mapping[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in
                                              value.items()):
        raise ValueError(f"{SOURCE.name}: {where} must map each message name to a description")
    for name in value:
        if not name.isidentifier() or name != name.lower():
            raise ValueError(f"{SOURCE.name}: {where}: {name!r} is not a lower_case name")
    return MappingProxyType(dict(value))


def load(path: Path = SOURCE) -> tuple[dict[str, Group], tuple[str, ...]]:
    """The groups (in the file's order) and the widgets' names, checked: every include is a group."""
    data = json.loads(path.read_text(encoding="utf-8"))
    groups: dict[str, Group] = {}
    for name, raw in data["groups"].items():
        groups[name] = Group(name, str(raw.get("python", "")), tuple(raw.get("includes", ())),
                             _names(raw.get("frontend_sends", {}), f"{name}.frontend_sends"),
                             _names(raw.get("kernel_sends", {}), f"{name}.kernel_sends"))
    widgets = tuple(data["widgets"])
    for group in groups.values():
        unknown = [g for g in group.includes if g not in groups]
        if unknown:
            raise ValueError(f"{path.name}: {group.name} includes unknown groups {unknown}")
    unknown = [w for w in widgets if w not in groups]
    if unknown:
        raise ValueError(f"{path.name}: widgets {unknown} have no group")
    return groups, widgets


GROUPS, WIDGETS = load()


def _closure(group: str, within: tuple[str, ...] = ()) -> list[str]:
    """`group` and the groups it includes (theirs too), includes first, each once."""
    if group in within:
        raise ValueError(f"{SOURCE.name}: {' -> '.join((*within, group))} includes itself")
    out: list[str] = []
    for name in GROUPS[group].includes:
        out += [found for found in _closure(name, (*within, group)) if found not in out]
    return [*out, group]


def frontend_sends(group: str) -> frozenset[str]:
    """The message types the front-end of `group` (a widget) sends, its includes' too."""
    return frozenset(name for g in _closure(group) for name in GROUPS[g].frontend_sends)


def kernel_sends(group: str) -> frozenset[str]:
    """The message types the kernel side of `group` (a widget) sends, its includes' too."""
    return frozenset(name for g in _closure(group) for name in GROUPS[g].kernel_sends)


def handled(widget: str) -> frozenset[str]:
    """The keys of `widget`'s handler table (ImageWidget._handlers): what its front-end sends, less the image
    requests the store answers first."""
    return frontend_sends(widget) - GROUPS[STORE_GROUP].frontend_sends.keys()


# Every message type, either way.
ALL: frozenset[str] = frozenset(name for g in GROUPS.values() for name in (*g.frontend_sends, *g.kernel_sends))
STUDIO_HANDLED = handled("Studio")
JOBVIEW_HANDLED = handled("JobView")
GALLERY_HANDLED = handled("Gallery")
