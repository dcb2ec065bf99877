"""Pages of the docs that are generated from the code and the README, so that
they cannot drift from either (Sphinx calls :func:`generate` from conf.py).

Strategy: plain functions that return MyST/reST text, and one writer that puts
them under ``docs/_generated/`` (ignored by git) before Sphinx reads sources:

* ``readme/NN-slug.md``: one page per ``##`` section of README.md, in order
  (the user guide; a section added to the README becomes a page);
* ``exception-table.md``: the README's exception section, without its heading;
* ``api-payprotocol.rst`` / ``api-simulator.rst``: an autodoc entry for every
  name in ``payprotocol.__all__`` / ``payprotocol.simulator.__all__``, grouped
  by the module that defines it;
* ``messages.md``: every P3 message type the SDK maps
  (:data:`payprotocol.codec.MESSAGE_TYPES`) with its direction, its data model
  and the :class:`~payprotocol.PayClient` methods it maps to (taken from the
  message names in the methods' docstrings).

A request type that no public method names is an error: the docs build fails.
tests/unit/test_docs_pages.py runs these functions without Sphinx.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
_MESSAGE_NAME = re.compile(r"\b[A-Z]+(?:_[A-Z]+)+\b")
_EXCEPTIONS_HEADING = "Exceptions"


def readme_sections(text: str) -> List[Tuple[str, str]]:
    """``(title, body)`` of each ``##`` section of a Markdown text, in order
    (headings inside fenced code blocks do not count)."""
    sections: List[Tuple[str, List[str]]] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif sections:
            sections[-1][1].append(line)
    return [(title, "\n".join(body).strip() + "\n") for title, body in sections]


def slug(title: str) -> str:
    """A file name for a section title."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _relink(match: re.Match[str]) -> str:
    """A README link as the generated page needs it: the README's paths are
    relative to the repository root, the page lives in ``docs/_generated``."""
    image, text, target = match.groups()
    if re.match(r"[a-z]+:|#", target):
        return match.group(0)  # a URL or an anchor: as it is
    if image:
        if target.startswith("docs/"):
            return f"![{text}](/{target[len('docs/'):]})"  # "/": the docs' source root
        return f"![{text}](/../{target})"
    return f"{text} (`{target}`)"  # a file of the repository: named, not linked


def readme_pages(text: str) -> Dict[str, str]:
    """File name -> MyST page for each README section (the section's heading
    becomes the page title; links to repository files become their names)."""
    return {
        f"{number:02d}-{slug(title)}.md": f"# {title}\n\n{_LINK.sub(_relink, body)}"
        for number, (title, body) in enumerate(readme_sections(text), start=1)
    }


def exception_table(text: str) -> str:
    """The body of the README section whose title starts with "Exceptions"."""
    for title, body in readme_sections(text):
        if title.startswith(_EXCEPTIONS_HEADING):
            return body
    raise RuntimeError(f"README.md has no '## {_EXCEPTIONS_HEADING}...' section")


def _kind(obj: object) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def api_page(package: str, title: str) -> str:
    """reST with an autodoc entry for every name in ``package.__all__``."""
    module = importlib.import_module(package)
    groups: Dict[str, List[str]] = {}
    for name in sorted(module.__all__, key=str.lower):
        if name == "__version__":
            continue
        obj = getattr(module, name)
        home = getattr(obj, "__module__", None) if callable(obj) else None
        if not home or not home.startswith("payprotocol"):
            home = package  # constants: listed under the package
        home = home.replace("._enums", ".models")  # _enums is private: shown with the models
        groups.setdefault(home, []).append(name)
    lines = [title, "=" * len(title), "", f".. module:: {package}", ""]
    for home in sorted(groups):
        heading = f"From ``{home}``"
        lines += [heading, "-" * len(heading), ""]
        for name in groups[home]:
            obj = getattr(module, name)
            kind = _kind(obj)
            lines.append(f".. {kind}:: {package}.{name}")
            if kind == "autoclass":
                lines.append("   :members:")
                if _is_enum(obj):
                    lines.append("   :undoc-members:")
                    lines.append("   :member-order: bysource")
            lines.append("")
    return "\n".join(lines)


def _is_enum(obj: object) -> bool:
    import enum

    return inspect.isclass(obj) and issubclass(obj, enum.Enum)


def message_rows() -> List[Tuple[str, str, str, List[str]]]:
    """``(message type, direction, data model, PayClient methods)`` for every
    message type the codec maps. Requests map to the public methods whose
    docstrings name them; a response, update or action maps to the methods of
    its request (their return value, their ``on_update``/``on_action``) and to
    any method naming it itself."""
    from payprotocol import PayClient
    from payprotocol.codec import MESSAGE_TYPES

    named: Dict[str, List[str]] = {}
    for name, member in inspect.getmembers(PayClient):
        if name.startswith("_"):
            continue
        for message_type in set(_MESSAGE_NAME.findall(inspect.getdoc(member) or "")):
            named.setdefault(message_type, []).append(name)
    rows = []
    for message_type, model in MESSAGE_TYPES.items():
        methods = set(named.get(message_type, []))
        kind = message_type.rsplit("_", 1)[1]
        if kind != "REQUEST":
            methods |= set(named.get(message_type[: -len(kind)] + "REQUEST", []))
        if kind == "REQUEST" and not methods:
            raise RuntimeError(f"no public PayClient method names {message_type} in its docstring")
        direction = "POS → PayServer" if kind == "REQUEST" else "PayServer → POS"
        rows.append((message_type, direction, model.__name__, sorted(methods)))
    return rows


def messages_table() -> str:
    """The rows of :func:`message_rows` as a MyST table."""
    lines = [
        "| message type | direction | data model | `PayClient` methods |",
        "|---|---|---|---|",
    ]
    for message_type, direction, model, methods in message_rows():
        calls = ", ".join(f"{{meth}}`~payprotocol.PayClient.{m}`" for m in methods)
        lines.append(
            f"| `{message_type}` | {direction} | {{class}}`~payprotocol.{model}` | {calls} |"
        )
    return "\n".join(lines) + "\n"


def generate(docs: Path) -> None:
    """Write every generated page under ``docs/_generated`` (only when changed,
    so Sphinx rebuilds only what changed)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    out = docs / "_generated"
    pages = {f"readme/{name}": text for name, text in readme_pages(readme).items()}
    pages["exception-table.md"] = exception_table(readme)
    pages["api-payprotocol.rst"] = api_page("payprotocol", "The payprotocol package")
    pages["api-simulator.rst"] = api_page("payprotocol.simulator", "The simulator")
    pages["messages-table.md"] = messages_table()
    wanted = {out / name for name in pages}
    for stale in out.rglob("*"):
        if stale.is_file() and stale not in wanted:
            stale.unlink()  # a README section that was removed or renamed
    for name, text in pages.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
