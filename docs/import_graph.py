"""The package's import graph, read from the code: layers, circles, and the figure in architecture.md.

    python docs/import_graph.py           # print the layers and any circle
    python docs/import_graph.py --write   # refresh the figure in docs/architecture.md

Every ``import`` counts, inside functions too (a lazy import is still a
dependency). Modules are grouped into "rooms": a sub-package (``io``,
``audit``, ``models``, ...) or a top-level module.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_yolosam"
NAME = "napari_yolosam"
#: The faces: the only modules that may import Qt, napari or magicgui.
FACES = ("widgets", "viewer", "cli")
GUI_MODULES = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "superqt")
BEGIN, END = "<!-- import-graph:begin -->", "<!-- import-graph:end -->"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> list[str]:
    return [module_name(p) for p in PACKAGE.rglob("*.py")]


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    modules = set(all_modules())
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = {f"{prefix}.{alias.name}" for alias in node.names}
            found |= names
            if not names & modules:  # "from pkg import name": pkg itself; "from . import mod": mod
                found.add(prefix)
    return found


def module_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = {t for t in imports_of(path) if t in files and t != name}
        graph[name] = targets
    return graph


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else NAME


def room_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    for source, targets in graph.items():
        here = room(source)
        rooms.setdefault(here, set()).update(room(t) for t in targets if room(t) != here)
    rooms.pop(NAME, None)  # the package root re-exports the public API: above every room
    for targets in rooms.values():
        targets.discard(NAME)
    return rooms


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def floors(rooms: dict[str, set[str]]) -> dict[str, int]:
    """Floor of each room: 0 for rooms importing none, else one above the highest it imports."""
    level: dict[str, int] = {}

    def floor(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in level:
            below = [floor(t, (*seen, name)) for t in rooms.get(name, ()) if t not in seen]
            level[name] = 1 + max(below) if below else 0
        return level[name]

    for name in rooms:
        floor(name)
    return level


def gui_imports(path: Path) -> set[str]:
    return {t for t in imports_of(path) if t.split(".")[0] in GUI_MODULES}


def core_gui_imports() -> dict[str, set[str]]:
    """Core modules (not a face) that import Qt, napari or magicgui."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if room(name).split("_")[0] in FACES or room(name) in FACES:
            continue
        bad = gui_imports(path)
        if bad:
            found[name] = bad
    return found


def mermaid(rooms: dict[str, set[str]]) -> str:
    """A mermaid flowchart of the rooms, lowest floor at the bottom."""
    level = floors(rooms)
    lines = ["```mermaid", "flowchart BT"]
    for name in sorted(rooms, key=lambda n: (level[n], n)):
        lines.append(f'  {name}["{name} (floor {level[name]})"]')
    for source in sorted(rooms):
        for target in sorted(rooms[source]):
            lines.append(f"  {source} --> {target}")
    lines.append("```")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="refresh docs/architecture.md")
    args = parser.parse_args()
    graph = module_graph()
    rooms = room_graph(graph)
    level = floors(rooms)
    arrows = sum(len(t) for t in rooms.values())
    print(f"{len(rooms)} rooms on {max(level.values()) + 1} floors, {arrows} arrows")
    for name in sorted(rooms, key=lambda n: (level[n], n)):
        print(f"  floor {level[name]}: {name} -> {', '.join(sorted(rooms[name])) or '-'}")
    print("module circles:", circles(graph) or "none")
    print("room circles:", circles(rooms) or "none")
    print("core modules importing Qt/napari:", core_gui_imports() or "none")
    if args.write:
        doc = ROOT / "docs" / "architecture.md"
        text = doc.read_text()
        figure = f"{BEGIN}\n{mermaid(rooms)}\n{END}"
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if not pattern.search(text):
            raise SystemExit(f"{doc}: no {BEGIN} ... {END} block to refresh")
        doc.write_text(pattern.sub(lambda _: figure, text))


if __name__ == "__main__":
    main()
