"""The dashboard uses the package's public API: every import in dashboard.py and ui/ reaches `cnl_core`'s names
(`__all__`) or one of its public modules (`PUBLIC_MODULES`: fields, options, errors, shared_mode, report), never
an internal module (issue #35). An internal name the dashboard needs is made public in cnl_core/__init__.py."""

import ast
from pathlib import Path

import cnl_core

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "dashboard.py", *sorted((ROOT / "ui").rglob("*.py"))]


def _public_module(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in cnl_core.PUBLIC_MODULES)


def _problems(path: Path, text: str | None = None) -> list[str]:
    """Each import of the file (or of `text`, read as that file) outside the public API, with its file and line."""
    out = []
    where = path.relative_to(ROOT)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8") if text is None else text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cnl_core.") and not _public_module(alias.name):
                    out.append(f"{where}:{node.lineno}: import {alias.name} (an internal module)")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "cnl_core":
                for alias in node.names:
                    public = alias.name in cnl_core.__all__ or _public_module(f"cnl_core.{alias.name}")
                    if not public:
                        out.append(f"{where}:{node.lineno}: from cnl_core import {alias.name} (not in __all__)")
            elif node.module.startswith("cnl_core.") and not _public_module(node.module):
                out.append(f"{where}:{node.lineno}: from {node.module} import ... (an internal module)")
    return out


def test_the_dashboard_imports_only_the_public_api():
    assert len(FILES) > 10
    problems = [p for f in FILES for p in _problems(f)]
    assert not problems, "imports outside cnl_core's public API:\n" + "\n".join(problems)


def test_every_public_name_and_module_exists():
    assert sorted(set(cnl_core.__all__)) == sorted(cnl_core.__all__)
    missing = [name for name in cnl_core.__all__ if not hasattr(cnl_core, name)]
    assert not missing
    import importlib

    for module in cnl_core.PUBLIC_MODULES:
        importlib.import_module(module)


def test_the_check_names_an_internal_import():
    text = "import gradio\nfrom cnl_core.experiments.result_cache import RESULTS\nfrom cnl_core import result_cache\n"
    assert _problems(ROOT / "ui" / "probe.py", text) == [
        "ui/probe.py:2: from cnl_core.experiments.result_cache import ... (an internal module)",
        "ui/probe.py:3: from cnl_core import result_cache (not in __all__)",
    ]
