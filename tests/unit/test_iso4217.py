"""The package's ISO 4217 table is the standard's List One, code for code.

The ``iso4217`` test dependency ships the maintenance agency's XML of List One
(``table.xml``); this test reads that XML itself (not through the dependency's
parser) and compares every current alphabetic code and its minor units with
``payprotocol._iso4217``. Moving the pin in ``.ci/constraints.txt`` to a newer
edition fails here until the table is copied again, and says what changed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Dict, Optional

import pytest

from payprotocol._iso4217 import MINOR_UNITS, PUBLISHED

pytestmark = pytest.mark.unit

iso4217 = pytest.importorskip("iso4217")


def _list_one() -> tuple[str, Dict[str, Optional[int]]]:
    from importlib.resources import files

    root = ET.fromstring(files("iso4217").joinpath("table.xml").read_bytes())
    table: Dict[str, Optional[int]] = {}
    for entry in root.findall("CcyTbl/CcyNtry"):
        code = (entry.findtext("Ccy") or "").strip()
        if not code:  # a country without a universal currency (Antarctica)
            continue
        units = (entry.findtext("CcyMnrUnts") or "").strip()
        table[code] = None if units == "N.A." else int(units)
    return root.attrib["Pblshd"], table


def test_the_table_is_the_standards_list_one() -> None:
    published, standard = _list_one()
    assert published == PUBLISHED, f"ISO 4217 {published} is out: copy it into _iso4217.py"
    missing = sorted(set(standard) - set(MINOR_UNITS))
    extra = sorted(set(MINOR_UNITS) - set(standard))
    differ = sorted(c for c in standard if c in MINOR_UNITS and standard[c] != MINOR_UNITS[c])
    assert (missing, extra, differ) == ([], [], [])
    assert len(MINOR_UNITS) == len(standard) > 170


def test_the_usual_exponents() -> None:
    assert (MINOR_UNITS["EUR"], MINOR_UNITS["JPY"], MINOR_UNITS["KWD"]) == (2, 0, 3)
    assert MINOR_UNITS["XTS"] is None and "XYZ" not in MINOR_UNITS
