"""The house's import rules, read from the source: no import cycles between the project's modules
(module-level imports; an import inside a function is a deliberate lazy one and still counted), and
no module imports another package's private (underscore) names."""
import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("asymmetry", "db", "labeling", "model", "ui")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def graph() -> nx.DiGraph:
    known = modules()
    g = nx.DiGraph()
    for name, path in known.items():
        for target, names in imports(path):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in known and candidate != name:
                    g.add_edge(name, candidate)
                    break
    return g


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(graph()))
    assert cycles == []


def test_no_private_names_across_packages():
    known = modules()
    leaks = [f"{name} imports {target}.{n}" for name, path in known.items() for target, names in imports(path)
             for n in names if n.startswith("_") and not n.startswith("__")
             and target.split(".")[0] in PACKAGES and target.split(".")[0] != name.split(".")[0]]
    assert leaks == []


def test_layers_flow_one_way():
    """The database door knows nothing of the domain; the imaging and the trainer never reach the
    database, the accounts or the screens (directly or through another module): storing their
    results is the workflow's job. The app's pages sit on top and nothing imports them."""
    g = graph()
    below = {"db": ("labeling", "asymmetry", "model", "ui"), "asymmetry": ("db", "model", "ui"),
             "model": ("db", "ui"), "labeling": ("ui",)}
    # Pure words and statistics any layer may use.
    shared = ("labeling.vocabulary", "labeling.agreement.measures")
    wrong = []
    for name in g.nodes:
        package = name.split(".")[0]
        for reached in nx.descendants(g, name):
            if reached.split(".")[0] in below.get(package, ()):
                wrong.append(f"{name} reaches {reached}")
        if package in ("asymmetry", "model"):
            wrong += [f"{name} imports {t}" for t in g.successors(name)
                      if t.split(".")[0] == "labeling" and t not in shared]
    assert wrong == []


def test_no_module_outgrows_a_room():
    """A module past ~600 lines holds more than one concern: split it by concern, as the rooms are."""
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 600}
    assert long == {}
