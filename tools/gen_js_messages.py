"""Write js/src/messages.js: the widgets' message types, from qvac_nb/widgets/messages.json (the list Python reads).

One constant per message type (`export const GENERATE = "generate"`) saying who sends it and what it is, and
for each group of messages (qvac_nb/widgets/messages.py) JSDoc unions of the types its front-end sends and of
those its kernel side sends (`StudioFrontendSends`, `StudioKernelSends`, ...), which js/src/types.js puts on
each widget's model: the type checker (`npm run typecheck`) refuses a message a widget does not take.

Usage: python tools/gen_js_messages.py [--check]
tests/test_messages.py fails when js/src/messages.js and the list differ.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tools' shared write-or-check step
from generated_file import write_or_check  # noqa: E402

SOURCE = ROOT / "qvac_nb" / "widgets" / "messages.py"
TARGET = ROOT / "js" / "src" / "messages.js"
HEADER = """\
// @ts-check
// Generated from qvac_nb/widgets/messages.json by tools/gen_js_messages.py: do not edit, run it again.
// The `type` of every custom message between a widget's front-end and the kernel. The front-end spells
// message types only through these constants (tests/test_messages.py checks it); the kernel dispatches
// on the same names (each widget's handler table, qvac_nb/widgets/messages.py).
"""
DIRECTIONS = (("frontend_sends", "front-end -> kernel", "FrontendSends"),
              ("kernel_sends", "kernel -> front-end", "KernelSends"))


def messages_module() -> ModuleType:
    """qvac_nb/widgets/messages.py, loaded by its path (it imports nothing from the package)."""
    spec = importlib.util.spec_from_file_location("qvac_nb_widget_messages", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is made
    spec.loader.exec_module(module)
    return module


def constant(name: str) -> str:
    """The JavaScript constant of a message type: "grid_axes" -> GRID_AXES."""
    return name.upper()


def _union(names: Sequence[str]) -> str:
    return " | ".join(f"typeof {constant(n)}" for n in names) or "never"


def render(module: ModuleType | None = None) -> str:
    messages = module or messages_module()
    groups = messages.GROUPS
    # Each type once, in the order the list first names it; its doc says every group that uses it, either way.
    uses: dict[str, list[str]] = {}
    for group in groups.values():
        for key, arrow, _suffix in DIRECTIONS:
            for name, description in getattr(group, key).items():
                uses.setdefault(name, []).append(f"{group.name}, {arrow}: {description}")
    lines = [HEADER]
    for name, said in uses.items():
        lines.append("/**")
        lines.append(f' * "{name}"')
        lines.extend(f" * - {line}" for line in said)
        lines.append(" */")
        lines.append(f'export const {constant(name)} = "{name}";')
        lines.append("")
    lines.append("// The types each group's front-end sends, and those its kernel side sends (its includes' too).")
    for group in groups:
        for key, arrow, suffix in DIRECTIONS:
            names = sorted(getattr(messages, key)(group))
            lines.append(f"/** @typedef {{{_union(names)}}} {group}{suffix} {group}: {arrow} */")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    return write_or_check(TARGET, render(), argv, "python tools/gen_js_messages.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
