"""The package reads top-down: one home per concept, no import cycles, evaluation and prediction without the
training loop."""

import ast
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
    if literal == "#C44E52":  # the same red also marks R peaks and end-systole in the cohort figures
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
        if relative.name == "__init__.py":
            continue
        if len(relative.parts) == 1:
            assert relative.name in block, relative
        else:  # a subpackage: the folder, and for training/, evaluation/, preprocessing/ each module's stem
            assert f"{relative.parts[0]}/" in block, relative
            if relative.parts[0] in ("training", "evaluation", "preprocessing"):
                assert relative.stem in block, relative
