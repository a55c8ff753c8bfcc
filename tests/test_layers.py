"""The house in layers: no import circle, the core free of Qt and napari, one public API."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("import_graph", ROOT / "docs" / "import_graph.py")
graph_tool = importlib.util.module_from_spec(spec)
sys.modules["import_graph"] = graph_tool
spec.loader.exec_module(graph_tool)


def test_no_import_circle_between_modules_or_packages():
    modules = graph_tool.module_graph()
    assert len(modules) > 50
    assert graph_tool.circles(modules) == []
    assert graph_tool.circles(graph_tool.room_graph(modules)) == []


def test_the_circle_finder_finds_a_circle():
    assert graph_tool.circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]


def test_core_imports_no_qt_or_napari():
    assert graph_tool.core_gui_imports() == {}
    widgets = ROOT / "src" / "napari_yolosam" / "widgets" / "review.py"
    assert graph_tool.gui_imports(widgets), "the check sees the widgets' Qt imports"


def test_public_api_from_the_package_root():
    import napari_yolosam

    for name in ("propose", "audit", "train", "read_stack", "quantify_labels", "embed_stack"):
        assert name in napari_yolosam.__all__
        assert callable(getattr(napari_yolosam, name))
    from napari_yolosam.proposals.core import propose

    assert napari_yolosam.propose is propose


def test_architecture_figure_is_current():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    rooms = graph_tool.room_graph(graph_tool.module_graph())
    assert graph_tool.mermaid(rooms) in doc, "run: python docs/import_graph.py --write"


def test_no_function_over_80_lines():
    import ast

    long = []
    for path in (ROOT / "src" / "napari_yolosam").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines)")
    assert long == []


def test_no_module_imports_the_package_root():
    """The root re-exports the public API; nothing below it imports it (no arrow up)."""
    modules = graph_tool.module_graph()
    assert [
        m for m, deps in modules.items() if "napari_yolosam" in deps and m != "napari_yolosam"
    ] == []
