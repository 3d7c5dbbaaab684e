"""The shape of the code, checked from files and ASTs alone (no database).

Nothing is imported here: the public-face rules, which must import the library to see that its
lazy names resolve, do it in a fresh interpreter (a subprocess), as a user of the library would.
Each test's name is the rule it enforces. The checkers are plain functions over a directory, so
the tests at the end run them on small made-up trees to show they find what they claim to find.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
#: The notes that used to be cited from the code; spelled in two parts so that this file, which
#: looks for them, does not mention them itself.
RETIRED_NOTES = tuple(f"{name}.md" for name in ("DESIGN", "REFERENCE"))


# --- helpers: modules and imports ---------------------------------------------------------------

def python_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path, root: Path) -> str:
    """audit/log/service.py -> audit.log.service; audit/log/__init__.py -> audit.log."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rel(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).as_posix()


@dataclass(frozen=True)
class Import:
    """One import statement's target, wherever it is in the file (module level or in a
    function, class or `if`): `module` is the dotted name imported, `names` what it takes from
    it (empty for `import x`)."""

    module: str
    names: tuple[str, ...]
    line: int


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every import in the file, relative ones resolved against the file's package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                module = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield Import(module, tuple(a.name for a in node.names), node.lineno)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and _call_name(node.func) in {"import_module", "__import__"}):
            yield Import(node.args[0].value, (), node.lineno)


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def top_name(module: str) -> str:
    return module.partition(".")[0]


# --- helpers: the import graph of a package -----------------------------------------------------

Graph = dict[str, dict[str, list[str]]]  # module -> imported module -> ["path:line", ...]


def known_module(name: str, modules: set[str]) -> str | None:
    """The longest prefix of a dotted name that is one of `modules` (so `audit.log.service.X`
    and `audit.log.service` both give audit.log.service)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(root: Path, package: str) -> Graph:
    """Edges between the modules of `package` (a directory under `root`).

    Counts every import statement in a file, at module level or inside a function.
    `from audit.x import name` is an edge to audit.x.name when that is a module, else to audit.x.
    Importing audit.x.y is an edge to audit.x.y only: that Python also runs the __init__ of
    audit.x on the way is not counted, so a package __init__ that re-exports its own
    submodules is no cycle by itself. It is one when a submodule then imports a name from the
    package __init__ (audit.x -> audit.x.y -> audit.x), which is a real cycle. A module
    importing itself is ignored.
    """
    files = {module_name(p, root): p for p in python_files(root / package)}
    modules = set(files)
    graph: Graph = {m: {} for m in modules}
    for source, path in files.items():
        for imp in imports_of(path, root):
            if top_name(imp.module) != package:
                continue
            # `from m import a, b`: each name that is a submodule of m is an edge to it; other
            # names (and `import m`, `from m import *`) are an edge to m itself.
            targets = [f"{imp.module}.{name}" if f"{imp.module}.{name}" in modules
                       else known_module(imp.module, modules) for name in imp.names] \
                or [known_module(imp.module, modules)]
            for target in targets:
                where = f"{rel(path, root)}:{imp.line}"
                if target is not None and target != source \
                        and where not in graph[source].setdefault(target, []):
                    graph[source][target].append(where)
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, {})):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def one_cycle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph[node]):
            if succ not in members:
                continue
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if succ not in previous:
                previous[succ] = node
                queue.append(succ)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - SCC guarantees one


def describe_cycles(graph: Graph) -> list[str]:
    lines = []
    for component in strongly_connected(graph):
        cycle = one_cycle(graph, component)
        steps = [f"    {a} -> {b}  ({', '.join(graph[a][b])})"
                 for a, b in pairwise(cycle)]
        lines.append(f"{' -> '.join(cycle)}  [component: {', '.join(component)}]")
        lines.extend(steps)
    return lines


# --- helpers: SQL in string literals -------------------------------------------------------------

#: Upper-case keywords anywhere, as SQL is written here; lower-case only where a string starts
#: with a statement that reads as SQL rather than prose ("Select a row from the list" is prose).
SQL_PATTERNS = [re.compile(p) for p in (
    r"\bSELECT\b[\s\S]*?\bFROM\b",
    r"\bINSERT\s+INTO\b",
    r"\bUPDATE\s+\S+\s+SET\b",
    r"\bDELETE\s+FROM\b",
    r"(?is)^\s*select\s+(?:\*|distinct\b|count\s*\(|[\w.]+\s*,).*?\bfrom\s+\w+",
    r"(?is)^\s*insert\s+into\s+\w+\s*(?:\(|values\b|select\b)",
    r"(?is)^\s*update\s+\w+\s+set\s+\w+\s*=",
    r"(?is)^\s*delete\s+from\s+\w+\s*(?:where\b|;|$)",
)]


def looks_like_sql(text: str) -> bool:
    return any(p.search(text) for p in SQL_PATTERNS)


def string_literals(path: Path) -> Iterator[tuple[int, str]]:
    """Every string literal with its line; an f-string as its text with {} for each field."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    in_fstring: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                in_fstring.add(id(value))
                parts.append(value.value if isinstance(value, ast.Constant) else "{}")
            yield node.lineno, "".join(str(p) for p in parts)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in in_fstring):
            yield node.lineno, node.value


# --- helpers: the README's Layout section ---------------------------------------------------------

LAYOUT_HEADING = "## Layout"


@dataclass(frozen=True)
class LayoutEntry:
    path: str
    description: str
    line: int


def layout_entries(readme: str) -> tuple[list[LayoutEntry], list[str]]:
    """The entries of the first fenced code block under "## Layout", and format errors.

    The format (also stated in the README): one entry per line, no indentation; the first token
    is a path relative to the repository root, either a directory ending in "/" or a file
    ending in ".py"; then at least two spaces and a description, which may name the modules of
    a package.
    """
    lines = readme.splitlines()
    try:
        start = lines.index(LAYOUT_HEADING)
    except ValueError:
        return [], [f"README.md has no {LAYOUT_HEADING!r} heading"]
    entries: list[LayoutEntry] = []
    errors: list[str] = []
    fence: int | None = None
    for number in range(start + 1, len(lines)):
        text = lines[number]
        if fence is None:
            if text.startswith("## "):
                break
            if text.startswith("```"):
                fence = number
            continue
        if text.startswith("```"):
            return entries, errors
        if not text.strip():
            continue
        match = re.fullmatch(r"(\S+)(?: {2,}(\S.*))?", text)
        where = f"README.md:{number + 1}"
        if match is None:
            errors.append(f"{where}: indented or single-spaced entry: {text!r}")
            continue
        path, description = match.group(1), match.group(2) or ""
        if not (path.endswith("/") or path.endswith(".py")):
            errors.append(f"{where}: {path!r} is neither a directory ending in / nor a .py file")
            continue
        if path.startswith(("/", "./")) or ".." in path.split("/"):
            errors.append(f"{where}: {path!r} is not relative to the repository root")
            continue
        entries.append(LayoutEntry(path, description, number + 1))
    if fence is None:
        errors.append(f"README.md: no code block under {LAYOUT_HEADING!r}")
    else:
        errors.append(f"README.md:{fence + 1}: the Layout code block is never closed")
    return entries, errors


def packages_and_modules(root: Path, package: str) -> set[str]:
    """What the Layout must list: every package directory under `package` (with a trailing /,
    itself included) and every module directly in it."""
    base = root / package
    wanted = {f"{package}/"}
    wanted |= {rel(p.parent, root) + "/" for p in base.rglob("__init__.py")
               if "__pycache__" not in p.parts}
    wanted |= {rel(p, root) for p in base.glob("*.py")}
    return wanted


def tracked_files(root: Path = ROOT) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc})")
    return [name for name in out.decode().split("\0") if name]


def top_level_directories(files: Iterable[str]) -> set[str]:
    """Tracked top-level directories, hidden ones (.ci/, .streamlit/) aside."""
    return {f"{name.split('/')[0]}/" for name in files
            if "/" in name and not name.startswith(".")}


# --- helpers: the public face -------------------------------------------------------------------

#: The packages that declare public names (docs/design.md §3): the library itself and the
#: subpackages the dashboard may import names from.
FACES = ("audit", "audit.storage", "audit.log", "audit.dose_reports", "audit.analytics",
         "audit.alerts", "audit.export", "audit.rules")

def package_dir(root: Path, package: str) -> Path:
    return root.joinpath(*package.split("."))


def is_package(root: Path, module: str) -> bool:
    return (package_dir(root, module) / "__init__.py").is_file()


def is_module_or_package(root: Path, module: str) -> bool:
    path = package_dir(root, module)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def public_face_violations(root: Path, directory: str, library: str = "audit",
                           exempt: frozenset[str] = frozenset()) -> list[str]:
    """Imports in `directory` that reach past the library's public face.

    Allowed: `import audit`, `from audit import X`, the shared top-level modules
    (`from audit.vocab import Role`) and a subpackage's declared names (`from audit.log import
    ProcedureLog`). Refused: any module inside a subpackage (`audit.log.service`), a private
    module (`audit._lazy`), and `from audit.<subpackage> import <its submodule>`. An import
    naming one of `exempt` is let through.
    """
    found = []
    for path in python_files(root / directory):
        for imp in imports_of(path, root):
            if top_name(imp.module) != library or exempt.intersection(imp.names):
                continue
            parts = imp.module.split(".")
            where = f"{rel(path, root)}:{imp.line}: "
            if any(part.startswith("_") for part in parts[1:]):
                found.append(where + f"{imp.module} is private")
            elif len(parts) > 2 or (len(parts) == 2 and is_package(root, imp.module)
                                    and not imp.names):
                found.append(where + f"{imp.module} is not the public face")
            elif len(parts) == 2 and is_package(root, imp.module):
                found.extend(where + f"{imp.module}.{name} is a module inside a subpackage"
                             for name in imp.names
                             if is_module_or_package(root, f"{imp.module}.{name}"))
    return found


@dataclass(frozen=True)
class Face:
    """What one package's __init__ declares: its literal `__all__` and, from its
    `if TYPE_CHECKING:` block, where each public name comes from (name -> (module, attribute))."""

    package: str
    all_names: tuple[str, ...]
    targets: dict[str, tuple[str, str]]


def read_face(root: Path, package: str) -> Face:
    tree = ast.parse((package_dir(root, package) / "__init__.py").read_text(encoding="utf-8"))
    all_names: tuple[str, ...] = ()
    targets: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "__all__"):
            all_names = tuple(ast.literal_eval(node.value))
        elif (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
              and node.test.id == "TYPE_CHECKING"):
            for sub in node.body:
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    for alias in sub.names:
                        targets[alias.asname or alias.name] = (sub.module, alias.name)
    return Face(package, all_names, targets)


def face_problems(root: Path, face: Face) -> list[str]:
    """What is wrong with a face without importing it: `__all__` and the names type checkers see
    differ, or a public name is also the name of one of the package's submodules (once that
    module is imported, Python sets it on the package and it hides the name)."""
    problems = []
    declared = set(face.all_names) - {"__version__"}
    if declared != set(face.targets):
        problems.append(f"{face.package}: __all__ and the TYPE_CHECKING imports differ: "
                        f"only in __all__ {sorted(declared - set(face.targets))}, "
                        f"only under TYPE_CHECKING {sorted(set(face.targets) - declared)}")
    problems.extend(f"{face.package}.{name} is also a submodule's name"
                    for name in face.all_names
                    if is_module_or_package(root, f"{face.package}.{name}"))
    return problems


def names_differing_between_faces(faces: Iterable[Face]) -> list[str]:
    """One object, one public name: the same target published under two names is a problem."""
    names: dict[tuple[str, str], set[str]] = {}
    for face in faces:
        for name, target in face.targets.items():
            names.setdefault(target, set()).add(f"{face.package}.{name}")
    return [f"{module}.{attribute}: {sorted(published)}"
            for (module, attribute), published in sorted(names.items())
            if len({p.rpartition(".")[2] for p in published}) > 1]


#: Run in a fresh interpreter: every target module is imported first (so that a public name
#: shadowed by a submodule shows), then each public name must be the very object it stands for.
RESOLVE_SCRIPT = """
import importlib, json, sys
faces = json.loads(sys.argv[1])
for targets in faces.values():
    for module, attribute in targets.values():
        importlib.import_module(module)
problems = []
for package, targets in faces.items():
    face = importlib.import_module(package)
    missing = set(face.__all__) - set(dir(face))
    if missing:
        problems.append(f"{package}: dir() lacks {sorted(missing)}")
    for name in face.__all__:
        try:
            value = getattr(face, name)
        except Exception as exc:
            problems.append(f"{package}.{name}: {type(exc).__name__}: {exc}")
            continue
        if name in targets:
            module, attribute = targets[name]
            if value is not getattr(importlib.import_module(module), attribute):
                problems.append(f"{package}.{name} is {value!r}, not {module}.{attribute}")
print(json.dumps(problems))
"""


def run_python(root: Path, *args: str) -> str:
    """Run this interpreter on `args` with `root` first on the path; its stdout."""
    done = subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# --- the rules ------------------------------------------------------------------------------------

def test_no_module_in_audit_or_dashboard_is_over_500_lines() -> None:
    too_long = [f"{rel(p)}: {n} lines"
                for directory in ("audit", "dashboard") for p in python_files(ROOT / directory)
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not too_long, f"modules over {MAX_LINES} lines:\n" + "\n".join(too_long)


def test_no_import_cycle_between_modules_of_audit() -> None:
    cycles = describe_cycles(import_graph(ROOT, "audit"))
    assert not cycles, "import cycles between audit modules:\n" + "\n".join(cycles)


def test_audit_never_imports_streamlit_or_dashboard() -> None:
    found = [f"{rel(p)}:{imp.line}: {imp.module}"
             for p in python_files(ROOT / "audit") for imp in imports_of(p, ROOT)
             if top_name(imp.module) in {"streamlit", "dashboard"}]
    assert not found, "audit/ imports the UI:\n" + "\n".join(found)


def test_dashboard_never_imports_sqlalchemy() -> None:
    found = [f"{rel(p)}:{imp.line}: {imp.module}"
             for p in python_files(ROOT / "dashboard") for imp in imports_of(p, ROOT)
             if top_name(imp.module) == "sqlalchemy"]
    assert not found, "dashboard/ imports sqlalchemy (queries belong in audit/):\n" + \
        "\n".join(found)


def test_dashboard_has_no_sql_string_literals() -> None:
    found = [f"{rel(p)}:{line}: {text.strip()[:80]!r}"
             for p in python_files(ROOT / "dashboard") for line, text in string_literals(p)
             if looks_like_sql(text)]
    assert not found, "SQL in dashboard/ (queries belong in audit/):\n" + "\n".join(found)


def test_no_tracked_file_mentions_design_md_or_reference_md() -> None:
    needles = [note.encode() for note in RETIRED_NOTES]
    found = []
    for name in tracked_files():
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            for needle in needles:
                if needle in line:
                    found.append(f"{name}:{number}: {needle.decode()}")
    assert not found, (f"{' or '.join(RETIRED_NOTES)} cited ({len(found)}):\n"
                       + "\n".join(found))


def readme_layout() -> list[LayoutEntry]:
    entries, errors = layout_entries((ROOT / "README.md").read_text(encoding="utf-8"))
    assert not errors, "\n".join(errors)
    return entries


def test_readme_layout_block_follows_the_documented_format() -> None:
    entries = readme_layout()
    assert entries, "the README's Layout block lists nothing"
    paths = [e.path for e in entries]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    assert not twice, f"listed more than once: {twice}"


def test_every_path_in_the_readme_layout_exists() -> None:
    missing = [f"README.md:{e.line}: {e.path}" for e in readme_layout()
               if not ((ROOT / e.path).is_dir() if e.path.endswith("/")
                       else (ROOT / e.path).is_file())]
    assert not missing, "listed in README.md's Layout but not in the tree:\n" + "\n".join(missing)


def test_every_audit_package_and_top_level_module_and_top_directory_is_in_the_readme_layout(
) -> None:
    listed = {e.path for e in readme_layout()}
    wanted = packages_and_modules(ROOT, "audit") | top_level_directories(tracked_files())
    unlisted = sorted(wanted - listed)
    assert not unlisted, "in the tree but not in README.md's Layout:\n" + "\n".join(unlisted)


def test_dashboard_imports_the_library_only_through_its_public_face() -> None:
    found = public_face_violations(ROOT, "dashboard")
    assert not found, ("dashboard/ imports library internals (use `from audit import X`, "
                       "`from audit.<subpackage> import X` or a shared module):\n"
                       + "\n".join(found))


def test_every_public_name_is_declared_once_and_resolves_to_what_it_names() -> None:
    faces = [read_face(ROOT, package) for package in FACES]
    problems = [p for face in faces for p in face_problems(ROOT, face)]
    problems += [f"one object, two public names: {d}" for d in names_differing_between_faces(faces)]
    assert all(face.all_names for face in faces), "a face has no literal __all__"
    payload = json.dumps({face.package: face.targets for face in faces})
    problems += json.loads(run_python(ROOT, "-c", RESOLVE_SCRIPT, payload))
    assert not problems, "broken public names:\n" + "\n".join(problems)


def test_importing_the_export_runner_or_the_faces_loads_no_pandas() -> None:
    assert run_python(ROOT, "-c", "import audit.export.runner; import sys; "
                      "print('pandas' in sys.modules)") == "False"
    faces = ", ".join(FACES)
    assert run_python(ROOT, "-c", f"import {faces}; import sys; "
                      "print(sorted({'pandas', 'sqlalchemy', 'numpy'} & set(sys.modules)))") == "[]"


# --- the checkers, on made-up trees -------------------------------------------------------------

def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_cycle_check_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "def thing():\n    from pkg import a\n    return a\n",
        "pkg/c.py": "import pkg.a\n",
    })
    graph = import_graph(root, "pkg")
    assert graph["pkg.b"] == {"pkg.a": ["pkg/b.py:2"]}  # `from pkg import a` is the module
    assert strongly_connected(graph) == [["pkg.a", "pkg.b"]]
    report = describe_cycles(graph)
    assert report[0].startswith("pkg.a -> pkg.b -> pkg.a")
    assert "pkg/a.py:1" in report[1] and "pkg/b.py:2" in report[2]


def test_cycle_check_accepts_an_init_reexporting_its_submodules(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "pkg/__init__.py": "from pkg.sub.x import X\n",
        "pkg/sub/__init__.py": "from .x import X\nfrom . import y\n",
        "pkg/sub/x.py": "from pkg.sub.y import helper\nX = helper()\n",
        "pkg/sub/y.py": "import os\ndef helper():\n    return 1\n",
    })
    graph = import_graph(root, "pkg")
    assert graph["pkg.sub"] == {"pkg.sub.x": ["pkg/sub/__init__.py:1"],
                                "pkg.sub.y": ["pkg/sub/__init__.py:2"]}
    assert describe_cycles(graph) == []


def test_cycle_check_finds_a_submodule_importing_a_name_from_its_package(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from pkg.sub.x import X\n",
        "pkg/sub/x.py": "from pkg.sub import Y\nX = 1\n",
    })
    assert strongly_connected(import_graph(root, "pkg")) == [["pkg.sub", "pkg.sub.x"]]


def test_import_scan_sees_nested_relative_and_dynamic_imports(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/m.py": ("import importlib\n"
                         "class C:\n"
                         "    def f(self):\n"
                         "        import streamlit as st\n"
                         "        from ..other import z\n"
                         "        return importlib.import_module('dashboard.app')\n"),
    })
    found = [(i.module, i.line) for i in imports_of(root / "pkg/sub/m.py", root)]
    assert ("streamlit", 4) in found and ("pkg.other", 5) in found
    assert ("dashboard.app", 6) in found


@pytest.mark.parametrize("text", [
    "SELECT id FROM procedure", "select * from procedure", "SELECT count(*)\n  FROM x",
    "INSERT INTO site (name) VALUES (:n)", "insert into site values (1)",
    "UPDATE procedure SET voided = 1", "update site set name = 'x'",
    "DELETE FROM alert WHERE id = 1", "delete from alert", "select a, b from t",
])
def test_sql_check_flags_sql(text: str) -> None:
    assert looks_like_sql(text)


@pytest.mark.parametrize("text", [
    "Select a row, or type a record number, to see its details and history.",
    "Select the physicians from the list", "Delete from the archive", "Update the site settings",
    "Insert into the report", "selected from",
])
def test_sql_check_leaves_prose_alone(text: str) -> None:
    assert not looks_like_sql(text)


def test_sql_check_reads_f_strings_whole(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text('table = "t"\nq = f"SELECT {1} FROM {table}"\n', encoding="utf-8")
    assert any(looks_like_sql(text) for _, text in string_literals(path))


def test_layout_parser_reads_entries_and_names_format_errors() -> None:
    readme = "\n".join([
        "# x", "## Layout", "", "Some prose.", "", "```",
        "audit/            the library", "audit/vocab.py    enumerations",
        "  indented.py  no", "audit/data.csv  not a package or module", "", "bench/",
        "```", "## Next", "```", "ignored/  after the section", "```",
    ])
    entries, errors = layout_entries(readme)
    assert [(e.path, e.line) for e in entries] == [("audit/", 7), ("audit/vocab.py", 8),
                                                   ("bench/", 12)]
    assert entries[1].description == "enumerations"
    assert len(errors) == 2 and "README.md:9" in errors[0] and "README.md:10" in errors[1]
    assert layout_entries("## Layout\n\nno block\n## Next\n")[1] == [
        "README.md: no code block under '## Layout'"]


def test_layout_wants_every_package_and_top_level_module(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "audit/__init__.py": "", "audit/vocab.py": "",
        "audit/log/__init__.py": "", "audit/log/service.py": "",
        "audit/log/deep/__init__.py": "", "audit/data/seed.csv": "",
    })
    assert packages_and_modules(root, "audit") == {
        "audit/", "audit/__init__.py", "audit/vocab.py", "audit/log/", "audit/log/deep/"}
    assert top_level_directories(["a.txt", ".ci/run", "audit/x.py", "docs/d.md"]) == {
        "audit/", "docs/"}


def test_public_face_check_finds_imports_past_the_face(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "lib/__init__.py": "", "lib/vocab.py": "", "lib/_lazy.py": "",
        "lib/log/__init__.py": "", "lib/log/service.py": "",
        "ui/page.py": ("import lib\n"
                       "from lib import ProcedureLog, vocab\n"
                       "from lib.vocab import Role\n"
                       "from lib.log import ProcedureLog\n"
                       "from lib.log.service import ProcedureLog\n"
                       "import lib.log.service\n"
                       "from lib.log import service\n"
                       "from lib._lazy import lazy_names\n"
                       "import lib.log\n"
                       "from lib.log.service import Filters\n"
                       "def f():\n    from lib.log.service import x\n"),
    })
    found = public_face_violations(root, "ui", "lib", exempt=frozenset({"Filters"}))
    assert [line.split(": ")[0] for line in found] == [
        "ui/page.py:5", "ui/page.py:6", "ui/page.py:7", "ui/page.py:8", "ui/page.py:9",
        "ui/page.py:12"]


def test_face_checks_find_undeclared_shadowed_and_twice_named_names(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "lib/__init__.py": ("from typing import TYPE_CHECKING\n"
                            "if TYPE_CHECKING:\n"
                            "    from lib.sub.calc import total as grand_total\n"
                            "__all__ = ['__version__', 'grand_total']\n"),
        "lib/sub/__init__.py": ("from typing import TYPE_CHECKING\n"
                                "if TYPE_CHECKING:\n"
                                "    from lib.sub.calc import total as total\n"
                                "    from lib.sub.calc import calc as calc\n"
                                "__all__ = ['calc', 'extra']\n"),
        "lib/sub/calc.py": "def total(): ...\ndef calc(): ...\n",
    })
    top, sub = read_face(root, "lib"), read_face(root, "lib.sub")
    assert top.targets == {"grand_total": ("lib.sub.calc", "total")}
    assert face_problems(root, top) == []
    problems = face_problems(root, sub)
    assert len(problems) == 2
    assert "only in __all__ ['extra']" in problems[0] and "['total']" in problems[0]
    assert problems[1] == "lib.sub.calc is also a submodule's name"
    assert names_differing_between_faces([top, sub]) == [
        "lib.sub.calc.total: ['lib.grand_total', 'lib.sub.total']"]
