"""The installed package is typed: the build's stub for the engine binding ships with py.typed,
and the engine's enum names are Literal types that match the engine."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from qvac_nb import _engine, engine, engine_types

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(_engine.__file__).parent  # where the wheel installed the extension


def _generator():
    spec = importlib.util.spec_from_file_location("gen_engine_types", ROOT / "tools" / "gen_engine_types.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_py_typed_and_stub_next_to_the_extension() -> None:
    assert (PACKAGE_DIR / "py.typed").is_file(), f"no py.typed in {PACKAGE_DIR}"
    stub = PACKAGE_DIR / "_engine.pyi"
    assert stub.is_file(), f"no _engine.pyi next to {Path(_engine.__file__).name}"
    text = stub.read_text()
    for cls in ("Context", "ContextConfig", "Request", "Upscaler", "Job", "Cancelled", "EngineError"):
        assert re.search(rf"^class {cls}\b", text, re.M), f"{cls} missing from the stub"


def test_stub_describes_this_build() -> None:
    text = (PACKAGE_DIR / "_engine.pyi").read_text()
    public = {name for name in dir(_engine) if not name.startswith("_")}
    missing = {name for name in public if not re.search(rf"^(class|def) {name}\b", text, re.M)}
    assert not missing, f"the stub lacks {sorted(missing)}: it is not from this build"
    # The bound signatures say what goes in and out (no bare `object` at the engine boundary).
    assert "def enum_names() -> dict[str, list[str]]" in text
    assert "def on_progress(self, /) -> Callable[[int, int, float, str], None] | None" in text
    assert "def set_log_handler(handler: Callable[[int, bytes], None] | None) -> None" in text
    assert "Literal['load', 'encode', 'sample', 'decode', 'upscale']" in text
    assert not re.search(r"[:>] object\b", text), "an untyped (object) parameter or result in the stub"
    assert _engine.__doc__ and "load_library" in _engine.__doc__


def test_engine_types_match_the_engine() -> None:
    names = engine.enum_names()
    gen = _generator()
    for key in gen.TYPES.values():
        assert list(engine_types.values(key)) == gen.usable(names[key]), key
    assert "euler_a" in engine_types.values("sample_method") and "q8_0" in engine_types.values("type")
    assert "DEPRECATED" not in engine_types.values("type")
    # The checked-in module is exactly what the generator writes for this engine.
    assert (ROOT / "qvac_nb" / "engine_types.py").read_text() == gen.render(names)
