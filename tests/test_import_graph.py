"""The core's layers import downward only: ops ← mixers ← models, and none of them imports the
tools built on them (train, bench, flops, cards, ...). Read from the source's import statements,
so a lazy import inside a function counts too."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mixlib"
# rank of each part of mixlib; a module may import only parts of a lower or equal rank
# (files, paths and provenance import nothing of mixlib: leaves that any part may use)
RANK = {"ops": 0, "layers": 0, "files": 0, "paths": 0, "provenance": 0, "mixers": 1, "models": 2}
TOOLS = 3  # everything else: train, bench, flops, cards, data, results, sweep, viz, ...


def _part(relative: tuple[str, ...]) -> str:
    return relative[0] if len(relative) > 1 else relative[0].removesuffix(".py")


def _imported_parts(path: Path, package: Path = PACKAGE) -> set[str]:
    """The parts of mixlib (ops, mixers, train, ...) that the module at `path` imports."""
    relative = path.relative_to(package).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = ["mixlib", *relative[:-1]][: len(relative) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            parts = module.split(".")
            if parts[0] != "mixlib":
                continue
            found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("mixlib.")}
    return found - {_part(relative)}


def test_the_import_graph_has_no_arrow_upward():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path.relative_to(PACKAGE).parts)
        if part not in RANK:
            continue
        for imported in _imported_parts(path):
            if RANK.get(imported, TOOLS) > RANK[part]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports mixlib.{imported}")
    assert not upward, upward


def test_the_check_sees_relative_and_lazy_imports(tmp_path):
    """The reader itself: an upward import written the ways mixlib writes imports is found."""
    fake = tmp_path / "mixlib"
    (fake / "ops").mkdir(parents=True)
    (fake / "ops" / "geometry.py").write_text(
        "from ..mixers import build\n"
        "def f():\n    from mixlib.train import train\n    import mixlib.models.small\n")
    assert _imported_parts(fake / "ops" / "geometry.py", fake) == {"mixers", "train", "models"}
