"""The widgets' messages come from one list (qvac_nb/widgets/messages.json): the front-end's constants
(js/src/messages.js) are generated from it, the front-end spells no message type outside them, and each widget's
handler table takes exactly the list's front-end messages for that widget. The front-end's types of each widget's
synced traits (js/src/types.js) name exactly the traits the Python widget syncs.

Which type each widget's front-end may send is checked by the type checker (`npm run typecheck`: a widget's
model.send takes its widget's types only, js/src/types.js)."""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qvac_nb.jobs import DiffusionJob
from qvac_nb.widgets import messages

ROOT = Path(__file__).resolve().parents[1]
JS_SRC = ROOT / "js" / "src"
MESSAGES_JS = JS_SRC / "messages.js"
TYPES_JS = JS_SRC / "types.js"
WIDGETS_PY = ROOT / "qvac_nb" / "widgets"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_js_messages", ROOT / "tools" / "gen_js_messages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code(path: Path) -> str:
    """A JS file without its comments (block comments, and line comments after a blank or at a line's start)."""
    text = re.sub(r"/\*.*?\*/", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return re.sub(r"(^|\s)//.*$", r"\1", text, flags=re.M)


def _js_files() -> Iterator[Path]:
    return (path for path in sorted(JS_SRC.glob("*.js")) if path != MESSAGES_JS)


def _imported_messages(code: str) -> set[str]:
    names: set[str] = set()
    for block in re.findall(r"import\s*\{([^}]*)\}\s*from\s*[\"']\./messages\.js[\"']", code):
        names.update(name.strip() for name in block.split(",") if name.strip())
    return names


def test_js_messages_module_is_generated_from_the_list() -> None:
    gen = _generator()
    assert MESSAGES_JS.read_text(encoding="utf-8") == gen.render(), "run python tools/gen_js_messages.py"
    assert gen.main(["--check"]) == 0


def test_the_list_is_well_formed() -> None:
    assert set(messages.WIDGETS) == {"Studio", "JobView", "Gallery"}
    for group in messages.GROUPS.values():
        assert group.python, f"{group.name}: say where its messages are handled"
        for name in (*group.frontend_sends, *group.kernel_sends):
            assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
    assert "image" in messages.frontend_sends("Gallery") and "zip" in messages.kernel_sends("JobView")
    assert messages.handled("Studio") == messages.STUDIO_HANDLED and "image" not in messages.STUDIO_HANDLED


def test_js_spells_no_message_type_outside_messages_js() -> None:
    """A message's type is one of messages.js's constants: not a literal in a message, nor in a comparison
    with a received message's type."""
    literal = "|".join(sorted(map(re.escape, messages.ALL), key=len, reverse=True))
    patterns = [re.compile(rf"\btype\s*:\s*[\"'`]({literal})[\"'`]"),
                re.compile(rf"\b(?:msg|message|content)\.type\s*[!=]==?\s*[\"'`]({literal})[\"'`]"),
                re.compile(rf"[\"'`]({literal})[\"'`]\s*[!=]==?\s*(?:msg|message|content)\.type\b")]
    found = []
    for path in _js_files():
        for number, line in enumerate(_code(path).splitlines(), 1):
            found += [f"{path.name}:{number}: {m.group(0)}" for p in patterns for m in p.finditer(line)]
    assert not found, "message types spelt out instead of messages.js's constants:\n" + "\n".join(found)


def test_js_uses_every_listed_message_and_only_listed_ones() -> None:
    exported = set(re.findall(r"^export const ([A-Z0-9_]+) = ", MESSAGES_JS.read_text(encoding="utf-8"), re.M))
    gen = _generator()
    assert exported == {gen.constant(name) for name in messages.ALL}
    used: set[str] = set()
    for path in _js_files():
        names = _imported_messages(_code(path))
        assert names <= exported, f"{path.name} imports {sorted(names - exported)} from messages.js"
        used |= names
    # A message the front-end never sends nor handles is not one of the widgets' any more: drop it from the list.
    assert used == exported, f"listed but not used by the front-end: {sorted(exported - used)}"


@pytest.fixture
def widgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """One of each widget, made without a kernel or a model (a job that ended before it ran, for the JobView)."""
    from qvac_nb.widgets import Gallery, JobView, Studio

    monkeypatch.chdir(tmp_path)  # the Studio looks for LoRA files in ./loras
    job = DiffusionJob("no-such-model", {"batch_count": 1})
    job._finish(None, None, job._cancelled_error())
    made = {"Studio": Studio(output_dir=None), "JobView": JobView(job), "Gallery": Gallery()}
    yield made
    for widget in made.values():
        widget.close()


def test_handler_tables_take_the_listed_messages(widgets: dict[str, Any]) -> None:
    """Each widget's handler table (what ImageWidget._on_msg dispatches on) takes exactly its list's front-end
    messages, less the image requests its store answers before the table is looked at."""
    assert set(widgets) == set(messages.WIDGETS)
    for name, widget in widgets.items():
        assert set(widget._handlers) == messages.handled(name), name
    store = messages.GROUPS[messages.STORE_GROUP]
    replies: list[dict[str, Any]] = []

    def send(reply: dict[str, Any], **_: Any) -> None:
        replies.append(reply)

    for request in store.frontend_sends:  # the store answers these, whatever the table holds
        assert widgets["Gallery"]._store.answer({"type": request, "id": "none"}, send), request
    assert [reply["type"] for reply in replies] == list(store.kernel_sends)


def _python_sent_types() -> Iterator[tuple[str, str]]:
    """(file:line, type) of every dict literal with a literal "type" in the widgets' Python (what the kernel sends)."""
    for path in sorted(WIDGETS_PY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (isinstance(key, ast.Constant) and key.value == "type" and isinstance(value, ast.Constant)
                            and isinstance(value.value, str)):
                        yield f"{path.name}:{node.lineno}", value.value


def test_kernel_sends_only_listed_messages() -> None:
    listed = {name for group in messages.GROUPS.values() for name in group.kernel_sends}
    sent = list(_python_sent_types())
    assert sent, "no message found in the widgets' Python: the scan is broken"
    unknown = [f"{where}: {kind}" for where, kind in sent if kind not in listed]
    assert not unknown, "the kernel sends messages the list does not have:\n" + "\n".join(unknown)


def _braced(text: str, start: int) -> int:
    """The index just past the brace group opening at text[start] ("{...}", nested braces included)."""
    depth = 0
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return index + 1
    raise ValueError(f"unbalanced braces from {text[start:start + 40]!r}")


def _js_typedefs() -> dict[str, set[str]]:
    """types.js's typedefs of objects as their property names; an intersection (A & B) as its parts' together."""
    typedefs: dict[str, set[str]] = {}
    for block in re.findall(r"/\*\*(.*?)\*/", TYPES_JS.read_text(encoding="utf-8"), flags=re.S):
        tags = [(m.group(1), m.end()) for m in re.finditer(r"@(typedef|property)\s*(?=\{)", block)]
        props: set[str] = set()
        typedef = None
        for tag, at in tags:
            end = _braced(block, at)
            named = re.match(r"\s*\[?(\w+)", block[end:])
            assert named is not None, block
            if tag == "property":
                props.add(named.group(1))
            else:
                typedef = (named.group(1), block[at + 1:end - 1].strip())
        if typedef is None:
            continue
        name, kind = typedef
        if kind == "object":
            typedefs[name] = props
        elif re.fullmatch(r"\w+(\s*&\s*\w+)+", kind):
            typedefs[name] = set().union(*(typedefs[part.strip()] for part in kind.split("&")))
    return typedefs


def test_js_trait_types_match_the_synced_traits() -> None:
    """StudioTraits, JobViewTraits and GalleryTraits (js/src/types.js) list the traits each widget syncs."""
    from qvac_nb import widgets as widget_classes

    typedefs = _js_typedefs()
    for name in messages.WIDGETS:
        cls = getattr(widget_classes, name)
        # Ours, not ipywidgets' own (layout, _view_name, ...), which the front-end never reads.
        synced = {trait for trait, kind in cls.class_traits(sync=True).items()
                  if (kind.this_class.__module__ or "").startswith("qvac_nb.")}
        assert synced, name
        assert typedefs.get(f"{name}Traits") == synced, f"js/src/types.js {name}Traits and {name}'s synced traits"
