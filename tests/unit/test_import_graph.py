"""The package's import graph (architecture.md, "The shape"; issue 8, item 3).

Two kinds of test:

* what an import loads, run in a fresh interpreter (``subprocess`` with
  ``sys.executable``) that prints the heavy modules found in ``sys.modules``:
  the protocol core loads no socket, TLS, SQLite, WebSocket or threading
  module; a bare ``import payprotocol`` loads none of ``ssl``, ``sqlite3``,
  ``websocket``; the transports load ``websocket``/``ssl`` only when opened;
* the static graph, read with ``ast`` from every module of the package: the
  graph of package-internal imports, module-level *and* function-level (lazy)
  ones, is acyclic, and no module imports another module's ``_private`` name.
  Imports under ``if TYPE_CHECKING:`` are left out: they never run.
  ``importlib.import_module`` in ``payprotocol/__init__.py``'s ``__getattr__``
  is dynamic and invisible to ``ast``; it only loads leaf modules on demand.

attrs imports ``threading`` itself (``attr/_compat.py``), so for ``threading``
the subprocess test checks that the core adds it to nothing more than what
``import attrs, cattrs`` already loads, and the static test checks that no core
module imports it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

import payprotocol

pytestmark = pytest.mark.unit

PACKAGE_DIR = Path(payprotocol.__file__).resolve().parent
HEAVY = ("socket", "ssl", "sqlite3", "websocket", "threading")
CORE = (
    "payprotocol.framing",
    "payprotocol.codec",
    "payprotocol.models",
    "payprotocol.model_fields",
    "payprotocol.redaction",
    "payprotocol.transaction_objects",
)


def _loaded_after(statement: str) -> Set[str]:
    """The modules of ``HEAVY`` in ``sys.modules`` after running ``statement``
    in a fresh interpreter (``-I``: no user site, no PYTHON* variables)."""
    program = "\n".join(
        [
            "import json, sys",
            textwrap.dedent(statement),
            f"print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded: List[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return set(loaded)


# --- what an import loads ------------------------------------------------------


def test_the_protocol_core_imports_no_io_module() -> None:
    baseline = _loaded_after("import attrs, cattrs")  # threading, through attrs
    loaded = _loaded_after("import " + ", ".join(CORE))
    assert loaded - baseline == set()
    assert loaded & {"socket", "ssl", "sqlite3", "websocket"} == set()


def test_a_bare_import_of_the_package_loads_no_tls_sqlite_or_websocket() -> None:
    assert _loaded_after("import payprotocol") & {"ssl", "sqlite3", "websocket"} == set()


def test_the_transport_module_loads_websocket_and_ssl_only_when_used() -> None:
    assert _loaded_after("import payprotocol.transport") & {"ssl", "websocket"} == set()


def test_importing_the_client_loads_no_tls_sqlite_or_websocket() -> None:
    assert _loaded_after("from payprotocol import PayClient") & {
        "ssl",
        "sqlite3",
        "websocket",
    } == set()


def test_tls_websocket_and_sqlite_load_when_a_url_or_journal_needs_them(tmp_path: Any) -> None:
    journal = tmp_path / "j.sqlite"
    code = (
        "from payprotocol import PayClient\n"
        f"PayClient('tcp://127.0.0.1:9', journal={str(journal)!r}).close()\n"
    )
    assert _loaded_after(code) & {"sqlite3", "ssl", "websocket"} == {"sqlite3"}


def test_the_lazy_names_resolve_and_stay_public() -> None:
    loaded = _loaded_after(
        """
        import payprotocol
        from payprotocol import Journal, PayClient
        assert payprotocol.PayClient is PayClient
        assert Journal.__module__ == "payprotocol.journal"
        assert {"PayClient", "Journal", "RecoveredOutcome"} <= set(dir(payprotocol))
        assert all(hasattr(payprotocol, name) for name in payprotocol.__all__)
        """
    )
    assert "sqlite3" in loaded  # the journal was really imported on demand
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        payprotocol.NoSuchName  # noqa: B018


# --- the static graph ----------------------------------------------------------


def _module_files() -> Dict[str, Path]:
    modules: Dict[str, Path] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.stmt]:
    """Every import statement that can run: module level and inside functions,
    but not under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _runtime_imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            yield from _runtime_imports(node)


def _base(module: str, node: ast.ImportFrom) -> Optional[str]:
    """The absolute module a ``from ... import`` reads from."""
    if node.level == 0:
        return node.module
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _edges(module: str) -> Iterator[Tuple[str, str, Optional[str]]]:
    """(imported package module, line, imported name or None) for each import."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in _runtime_imports(tree):
        where = f"{MODULES[module].name}:{node.lineno}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, where, None
            continue
        base = _base(module, node)
        if base not in MODULES:
            continue  # the standard library or a dependency
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in MODULES:  # ``from . import codec``: the module itself
                yield submodule, where, None
            else:
                yield base, where, alias.name


def test_every_module_is_found() -> None:
    assert {"payprotocol", "payprotocol.codec", "payprotocol.naming"} <= set(MODULES)
    assert "payprotocol.simulator.engine" in MODULES


def test_the_import_graph_has_no_cycle() -> None:
    graph = {module: sorted({target for target, _, _ in _edges(module)}) for module in MODULES}
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module)


def test_no_module_imports_another_modules_private_names() -> None:
    offences = [
        f"{where}: from {target} import {name}"
        for module in MODULES
        for target, where, name in _edges(module)
        if name is not None and name.startswith("_") and not name.startswith("__")
    ]
    assert offences == []


def test_the_core_and_the_naming_rules_import_no_io_module() -> None:
    for module in (*CORE, "payprotocol._enums", "payprotocol.naming", "payprotocol.wire_converter"):
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        imported = {
            alias.name.partition(".")[0]
            for node in _runtime_imports(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").partition(".")[0]
            for node in _runtime_imports(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
        }
        assert imported & set(HEAVY) == set(), module


def test_the_naming_rules_depend_on_nothing_in_the_package() -> None:
    assert list(_edges("payprotocol.naming")) == []
    assert list(_edges("payprotocol._enums")) == []
    assert list(_edges("payprotocol.redaction")) == []
    assert {target for target, _, _ in _edges("payprotocol.model_fields")} == {
        "payprotocol.redaction",
    }
    assert {target for target, _, _ in _edges("payprotocol.transaction_objects")} == {
        "payprotocol._enums",
        "payprotocol.model_fields",
    }
    assert {target for target, _, _ in _edges("payprotocol.models")} == {
        "payprotocol._enums",
        "payprotocol.model_fields",
        "payprotocol.redaction",
        "payprotocol.transaction_objects",
    }
