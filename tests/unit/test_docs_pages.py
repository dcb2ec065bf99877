"""The generated pages of the docs (docs/_ext/p3docs.py), checked without
Sphinx: every README section becomes a guide page, the exception table is
found, every exported name gets an API entry, and every P3 request type maps
to a PayClient method (the messages page)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import payprotocol
import payprotocol.simulator
from payprotocol.codec import MESSAGE_TYPES

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def p3docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("p3docs", REPO / "docs" / "_ext" / "p3docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("p3docs", module)
    spec.loader.exec_module(module)
    return module


def test_sections_ignore_headings_in_code(p3docs: ModuleType) -> None:
    text = "# T\nintro\n## One\na\n```sh\n## not a heading\n```\n## Two\nb\n"
    assert p3docs.readme_sections(text) == [
        ("One", "a\n```sh\n## not a heading\n```\n"),
        ("Two", "b\n"),
    ]
    assert list(p3docs.readme_pages(text)) == ["01-one.md", "02-two.md"]
    assert p3docs.readme_pages(text)["02-two.md"] == "# Two\n\nb\n"


def test_readme_links_are_rewritten_for_the_generated_pages(p3docs: ModuleType) -> None:
    text = (
        "## S\nSee [the sample](samples/tk_pos.py), [P3](https://example.org/p3), "
        "[below](#threads) and ![till](docs/images/tk_pos.png).\n"
    )
    page = p3docs.readme_pages(text)["01-s.md"]
    assert "the sample (`samples/tk_pos.py`)" in page
    assert "[P3](https://example.org/p3)" in page and "[below](#threads)" in page
    assert "![till](/images/tk_pos.png)" in page


def test_every_readme_section_is_a_guide_page(p3docs: ModuleType) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    titles = [line[3:].strip() for line in readme.splitlines() if line.startswith("## ")]
    pages = p3docs.readme_pages(readme)
    assert len(pages) == len(titles) >= 5
    assert [text.splitlines()[0] for text in pages.values()] == [f"# {t}" for t in titles]


def test_the_exception_table_comes_from_the_readme(p3docs: ModuleType) -> None:
    table = p3docs.exception_table((REPO / "README.md").read_text(encoding="utf-8"))
    for name in ("ServerError", "TransactionOutcomeUnknownError", "ConnectionLostError"):
        assert f"`{name}`" in table
    with pytest.raises(RuntimeError, match="Exceptions"):
        p3docs.exception_table("## Something else\n")


@pytest.mark.parametrize("package", [payprotocol, payprotocol.simulator])
def test_every_exported_name_has_an_api_entry(p3docs: ModuleType, package: ModuleType) -> None:
    page = p3docs.api_page(package.__name__, "Title")
    for name in package.__all__:
        if name != "__version__":
            assert f":: {package.__name__}.{name}\n" in page, name
    assert "._enums" not in page  # private modules are not shown as homes


def test_every_message_type_maps_to_a_method(p3docs: ModuleType) -> None:
    rows = {row[0]: row for row in p3docs.message_rows()}
    assert set(rows) == set(MESSAGE_TYPES)
    for message_type, (_, direction, model, methods) in rows.items():
        assert methods, message_type
        assert hasattr(payprotocol, model)
        assert direction.startswith("POS") == message_type.endswith("_REQUEST")
    assert rows["EXECUTE_TRANSACTION_REQUEST"][3] == ["charge", "execute_transaction"]
    assert "on_action" in rows["EXECUTE_TRANSACTION_ACTION"][3]
    assert "refund" in rows["AMEND_TRANSACTION_REQUEST"][3]
    assert "submit_signature" in rows["SUBMIT_SIGNATURE_RESPONSE"][3]


def test_generate_writes_the_pages_and_removes_stale_ones(
    p3docs: ModuleType, tmp_path: Path
) -> None:
    stale = tmp_path / "_generated" / "readme" / "99-gone.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    p3docs.generate(tmp_path)
    out = tmp_path / "_generated"
    assert not stale.exists()
    table = (out / "messages-table.md").read_text().splitlines()
    assert len([line for line in table if line.startswith("| `")]) == len(MESSAGE_TYPES)
    assert (out / "api-payprotocol.rst").exists() and (out / "exception-table.md").exists()
    assert len(list((out / "readme").glob("*.md"))) >= 5
