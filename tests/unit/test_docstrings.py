"""Every public name has a docstring of its own: the classes and functions of
``payprotocol.__all__`` and ``payprotocol.simulator.__all__`` (the API
reference in docs/ is generated from them), and their public methods."""

from __future__ import annotations

import importlib
import inspect
from typing import List

import pytest

pytestmark = pytest.mark.unit

PACKAGES = ["payprotocol", "payprotocol.simulator"]


def _own_doc(obj: object) -> str:
    # A class's own docstring only: an Enum or an Exception must not pass on
    # its base's text.
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return (doc or "").strip()


def _undocumented(package: str) -> List[str]:
    module = importlib.import_module(package)
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants: documented in the API reference's text
        if not _own_doc(obj):
            missing.append(f"{package}.{name}")
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not (
                    inspect.isfunction(member) or isinstance(member, property)
                ):
                    continue
                if not (getattr(member, "__doc__", None) or "").strip():
                    missing.append(f"{package}.{name}.{attr}")
    return missing


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_has_a_docstring(package: str) -> None:
    assert _undocumented(package) == []


def test_the_check_sees_a_missing_docstring() -> None:
    class Bare:
        pass

    class Documented:
        """Has one."""

    assert _own_doc(Bare) == "" and _own_doc(Documented) == "Has one."
