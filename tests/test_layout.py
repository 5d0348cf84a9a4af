"""The package's shape: no import cycles, lower layers never import upper ones, ruff is clean.

Imports are read from the source with `ast`, those inside functions included: a lazy import
still ties two modules together.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "alexnet_jax"

# Bottom to top. A module may import its own layer (without cycles) and the layers below. A name
# covers its submodules too, unless a longer name is listed; "pkg.*" covers only the submodules
# and "=pkg" only the package itself. A module that no entry covers fails the test.
LAYERS = (
    # The foundation: shared helpers, the exceptions, the paper's published numbers.
    ("=alexnet_jax", "alexnet_jax.toolbox", "alexnet_jax.cli", "alexnet_jax.errors", "alexnet_jax.paper"),
    # What everything else is built from: configs, labels and splits, the results schema, models, RNG.
    (
        "alexnet_jax.configs",
        "alexnet_jax.data.labels",
        "alexnet_jax.data.splits",
        "alexnet_jax.data.prepared",
        "alexnet_jax.results",
        "alexnet_jax.models",
        "alexnet_jax.seeds",
        "alexnet_jax.inputs.augment",
        "=alexnet_jax.inputs",
    ),
    # Data sets, the input pipelines, weight files and the converter.
    ("alexnet_jax.data", "alexnet_jax.inputs", "alexnet_jax.params_io", "alexnet_jax.convert"),
    # Calibration's files and metrics (numpy only), then the prediction library: an ensemble's
    # members, the forward pass, the inputs, the streaming loop, the output files, neighbours.
    ("alexnet_jax.calibration",),
    ("=alexnet_jax.predict", "alexnet_jax.predict.*"),
    # The training core, bottom to top: the steps and the run directory; the arms, the plan (the
    # config read once) and a run's data; one arm's records and epoch loop; the session (the one
    # entry point, `alexnet_jax.training.train`) and the launcher of many runs.
    ("alexnet_jax.training.steps", "alexnet_jax.training.rundir"),
    (
        "alexnet_jax.training.arms",
        "alexnet_jax.training.label_budget",
        "alexnet_jax.training.plan",
        "alexnet_jax.training.rundata",
    ),
    ("alexnet_jax.training.member", "alexnet_jax.training.trainer"),
    ("alexnet_jax.training.session", "alexnet_jax.training.launcher", "alexnet_jax.training"),
    # The statistics engine reads only results; the commands sit on top.
    ("=alexnet_jax.analysis", "alexnet_jax.analysis.*"),
    ("alexnet_jax.train",),
    (
        "alexnet_jax.predict.__main__",
        "alexnet_jax.calibration.__main__",
        "alexnet_jax.study",
        "alexnet_jax.multihost",
        "alexnet_jax.bench",
        "alexnet_jax.analyze",
    ),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The alexnet_jax modules that `path` imports anywhere in its body."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {name for name in found if name in known and name != module_name(path)}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) for name, path in found.items()}


def layer_of(name: str) -> int:
    """The layer of the longest LAYERS entry that covers `name` ("pkg.*" beats "pkg" for children)."""
    matches = []
    for index, members in enumerate(LAYERS):
        for member in members:
            if member.startswith("="):
                if name == member[1:]:
                    matches.append((len(member), index))
            elif member.endswith(".*"):
                if name.startswith(member[:-1]):
                    matches.append((len(member) - 1.5, index))
            elif name == member or name.startswith(member + "."):
                matches.append((len(member), index))
    assert matches, f"{name} belongs to no layer in tests/test_layout.py: add it to LAYERS"
    return max(matches)[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for child in graph[node]:
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_cycles():
    graph = import_graph()
    # A package's __init__ re-exporting its submodules is how Python packages work, not a cycle
    # between concepts: leave those edges out.
    pruned = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert cycles(pruned) == []


def test_lower_layers_never_import_upper_ones():
    upward = [
        f"{name} (layer {layer_of(name)}) imports {dep} (layer {layer_of(dep)})"
        for name, deps in sorted(import_graph().items())
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(name)
    ]
    assert upward == []


def test_no_module_imports_another_modules_private_names():
    """A name with a leading underscore is its module's own; a second user means it is shared, so public."""
    private = []
    for name, path in sorted(modules().items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("alexnet_jax"):
                private += [f"{name} imports {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


def test_the_model_step_and_analysis_import_neither_tensorflow_nor_torch():
    code = (
        "import sys, tempfile, pathlib; import alexnet_jax.train, alexnet_jax.analyze, alexnet_jax.analysis.stats, "
        "alexnet_jax.predict.__main__, alexnet_jax.predict.engine, alexnet_jax.predict.sources, "
        "alexnet_jax.predict.output, alexnet_jax.predict.stream; "
        "from alexnet_jax.training.member import tensorboard_writer; "
        "tensorboard_writer(pathlib.Path(tempfile.mkdtemp())).close(); "  # tensorboardX would import torch
        "bad = sorted(m for m in ('tensorflow', 'torch', 'torchvision') if m in sys.modules); "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"imported: {done.stdout.strip()} {done.stderr[-2000:]}"


def test_ruff_check_and_format_are_clean():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip(f"ruff is not installed next to {sys.executable}; `pip install -e '.[test]'` brings it")
    check = subprocess.run([str(ruff), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-1000:]
    form = subprocess.run([str(ruff), "format", "--check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert form.returncode == 0, form.stdout[-3000:] + form.stderr[-1000:]
