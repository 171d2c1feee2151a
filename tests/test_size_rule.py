"""One size rule: the family table's size_multiple is what validation checks, what the Studio form snaps
to and what every error suggests, so a suggested size is always accepted."""

from __future__ import annotations

import re

import pytest

from qvac_nb import families, schema
from qvac_nb.checks import guards, tables
from qvac_nb.errors import InvalidParameterError

DIFFUSION = [f for f in families.FAMILIES.values() if f.kind in ("unet", "dit")]
# The engine's spatial multiple (VAE scale factor x network down factor), from its source: U-Nets 8 x 8,
# DiTs 8 x 1, the FLUX.2 / ERNIE-Image VAE 16 x 1. A row that drifts from the engine fails here.
ENGINE_MULTIPLE = {"unet": 64, "dit": 8}
FLUX2_VAE_FAMILIES = {"flux2", "ernie_image"}


@pytest.mark.parametrize("family", DIFFUSION, ids=lambda f: f.name)
def test_the_table_matches_the_engine_and_validation_and_the_form(family: families.Family) -> None:
    expected = 16 if family.name in FLUX2_VAE_FAMILIES else ENGINE_MULTIPLE[family.kind]
    assert family.size_multiple == expected
    assert guards.size_multiple(family.name) == family.size_multiple
    assert family.as_json()["size_multiple"] == family.size_multiple  # what the form snaps to


@pytest.mark.parametrize("family", DIFFUSION, ids=lambda f: f.name)
def test_every_suggested_size_is_accepted(family: families.Family) -> None:
    multiple = family.size_multiple
    for bad in (guards.MIN_SIDE + 1, 100, 1000 + multiple // 2 + 1, 4000 + 1):  # within validation's 64-4096
        if bad % multiple == 0:
            continue
        with pytest.raises(InvalidParameterError) as caught:
            guards.check_size(family.name, {"width": bad, "height": 64 * 2})
        message = str(caught.value)
        assert family.label in message and f"multiples of {multiple}" in message
        suggested = [int(n) for n in re.findall(r"try (\d+)(?: or (\d+))?", message)[0] if n]
        assert suggested, message
        for size in suggested:
            guards.check_size(family.name, {"width": size, "height": size})  # accepted: no error


@pytest.mark.parametrize("family", DIFFUSION, ids=lambda f: f.name)
def test_validation_leaves_sizes_to_the_family_rule(family: families.Family) -> None:
    """The parameter check does not speak of a generic step of 8 that the family would then refuse: with a
    family it leaves the size to guards.check_size (whose suggestions the test above checks)."""
    for bad in (100, 1000 + family.size_multiple // 2 + 1):
        values = tables.validate(schema.DIFFUSION, {"prompt": "x", "width": bad}, where="diffusion",
                                 family=family.name)
        if bad % family.size_multiple:
            with pytest.raises(InvalidParameterError, match=f"multiples of {family.size_multiple}; try"):
                guards.check_size(family.name, values)
    with pytest.raises(InvalidParameterError, match=r"multiple of 8, got 100 \(try 96 or 104\)"):
        tables.validate(schema.DIFFUSION, {"prompt": "x", "width": 100}, where="diffusion")  # no family known
