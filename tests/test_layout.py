"""The package reads top-down: one folder per stage, one home per concept, no import cycles, nothing imported upward,
the model without training or evaluation, evaluation and prediction without the training loop."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ptacl_core"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _strings(path: Path) -> list[str]:
    """String constants of a module, docstrings excluded."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


@pytest.mark.parametrize("literal, home", [("last.pt", "ptacl_core.training.runs"), ("metrics.csv", "ptacl_core.training.runs"),
                                           ("global only", "ptacl_core.methods"), ("#C44E52", "ptacl_core.methods"),
                                           ("upper ref.", "ptacl_core.methods")])
def test_a_literal_has_one_home(literal, home):
    holders = {_module_name(p) for p in MODULES if any(literal in s for s in _strings(p))}
    if literal == "#C44E52":  # the same red marks R peaks and end-systole: plotting.style.MARK_COLOUR
        holders.discard("ptacl_core.plotting.style")
    assert holders == {home}


def test_the_verdict_rule_is_one_function():
    definitions = {_module_name(p) for p in MODULES for node in ast.walk(ast.parse(p.read_text()))
                   if isinstance(node, ast.FunctionDef) and node.name in ("judge", "seed_margin", "seed_standard_error", "interval")}
    assert definitions == {"ptacl_core.evaluation.statistics"}


def test_every_module_imports_on_its_own_without_cycles():
    """Each module imported first in a fresh interpreter (a cycle fails whichever module starts it)."""
    names = [_module_name(p) for p in MODULES if p.name != "__main__.py"]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    for loaded in [m for m in sys.modules if m.startswith('ptacl_core')]:\n        del sys.modules[loaded]\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("module", ["ptacl_core.prediction", "ptacl_core.evaluation.comparison", "ptacl_core.evaluation.report"])
def test_evaluation_does_not_import_the_training_loop(module):
    code = f"import sys, {module}; print('ptacl_core.training.loop' in sys.modules, 'torch' in sys.modules)"
    loop, torch = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split()
    assert loop == "False"
    if module.endswith("report"):
        assert torch == "False"  # the plain-text report needs neither torch nor the trainer


def test_the_readme_layout_names_every_module():
    readme = (PACKAGE.parent / "README.md").read_text()
    block = readme[readme.index("## Layout"):]
    block = block[block.index("```"):block.index("```", block.index("```") + 3)]
    for path in MODULES:
        relative = path.relative_to(PACKAGE)
        if relative.name == "__init__.py" and len(relative.parts) == 1:
            continue
        if len(relative.parts) == 1:
            assert relative.name in block, relative
        else:  # a stage: its folder, and each of its modules (or sub-folder) by name
            assert f"{relative.parts[0]}/" in block, relative
            name = relative.parts[1] if len(relative.parts) > 2 else relative.stem
            if name != "__init__":
                assert name in block, relative


# Stages, lowest first: a module imports only from stages below its own (a foundation module from none but
# foundations). ``ptacl_core`` itself is the package root (``__version__``).
STAGES = {
    "ptacl_core": 0, "leads": 0, "phenotypes": 0, "config": 0, "paths": 0, "methods": 0,
    "tools": 1, "io": 1, "model": 1, "plotting": 1,
    "preprocessing": 2, "synthetic": 3, "training": 4, "evaluation": 5, "prediction": 6, "explore": 6, "__main__": 7,
}


def _stage(module: str) -> str:
    parts = module.split(".")
    return "ptacl_core" if len(parts) == 1 else parts[1]


def _internal_imports(path: Path):
    """(line, imported module, inside a function) for every ``ptacl_core`` import of a module."""
    tree = ast.parse(path.read_text())
    in_function = {id(node) for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(function)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ptacl_core"):
            targets = [node.module] if node.module != "ptacl_core" else [f"ptacl_core.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("ptacl_core")]
        else:
            continue
        for target in targets:
            yield node.lineno, target, id(node) in in_function


def test_every_stage_has_a_rank():
    stages = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in MODULES} - {"__init__"}
    assert stages <= set(STAGES), stages - set(STAGES)


def test_nothing_is_imported_upward():
    upward = []
    for path in MODULES:
        me = _stage(_module_name(path))
        for line, target, _ in _internal_imports(path):
            other = _stage(target)
            if other == "__version__":
                other = "ptacl_core"
            if other != me and not (STAGES[other] < STAGES[me] or STAGES[other] == STAGES[me] == 0):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({me}) imports {target} ({other})")
    assert not upward, "\n".join(upward)


def test_the_model_imports_nothing_from_training_evaluation_or_preprocessing():
    code = ("import sys, ptacl_core.model.encoders, ptacl_core.model.losses, ptacl_core.model.geometry, "
            "ptacl_core.model.presets; print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('ptacl_core.')}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert not {"training", "evaluation", "preprocessing", "prediction", "explore"} & set(ast.literal_eval(loaded.stdout))


def test_an_import_inside_a_function_says_why():
    """Imports sit at module top; a lazy one (a heavy optional dependency, or one that must not load torch or the
    trainer) carries a comment on its line saying why."""
    silent = []
    for path in MODULES:
        lines = path.read_text().splitlines()
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "#" not in lines[node.lineno - 1]:
                    silent.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not silent, "\n".join(silent)


@pytest.mark.parametrize("package", sorted({p.parent for p in MODULES if p.parent != PACKAGE}), ids=lambda p: p.name)
def test_a_stage_docstring_names_what_it_owns(package):
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    owned = {p.stem for p in package.glob("*.py") if p.stem != "__init__"} | {p.name for p in package.iterdir()
                                                                             if (p / "__init__.py").exists()}
    assert all(name in docstring for name in owned), sorted(n for n in owned if n not in docstring)


def test_the_readme_links_only_files_a_clone_has():
    """A user's clone has no ../shared: every relative link of the README names a file of the repository."""
    readme = (PACKAGE.parent / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", readme) if "://" not in t]
    assert targets and all(not t.startswith("..") and (PACKAGE.parent / t).exists() for t in targets), targets
