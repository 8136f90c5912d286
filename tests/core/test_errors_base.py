"""Every exception class pmm-widgets defines derives from `pmm_widgets.errors.PmmError`."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pmm_widgets
from pmm_widgets.errors import PmmError

ROOT = Path(pmm_widgets.__file__).parent
BUILTIN_EXC = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


def _base_names(cls: ast.ClassDef) -> list[str]:
    out = []
    for b in cls.bases:
        if isinstance(b, ast.Name):
            out.append(b.id)
        elif isinstance(b, ast.Attribute):
            out.append(b.attr)
    return out


def test_every_exception_class_derives_from_pmm_error() -> None:
    offenders, found = [], 0
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = _base_names(node)
            found += "PmmError" in bases
            if any(b in BUILTIN_EXC for b in bases) and "PmmError" not in bases and node.name != "PmmError":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({', '.join(bases)})")
    assert found >= 15, found  # the scan does see the project's exceptions
    assert not offenders, "derive these from pmm_widgets.errors.PmmError:\n" + "\n".join(offenders)


def test_former_builtin_bases_are_kept() -> None:
    from pmm_widgets.book import BookError
    from pmm_widgets.execution.live import LiveError
    from pmm_widgets.venue.broker import BrokerError

    assert issubclass(BookError, PmmError) and issubclass(BookError, ValueError)
    assert issubclass(LiveError, PmmError) and issubclass(BrokerError, PmmError)
    assert not issubclass(PmmError, ValueError)
