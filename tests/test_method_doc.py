"""docs/METHOD.md, the method as the kit implements it, stays current with the code.

The checker reads the page and reports every problem as one line:

- links: every relative link resolves from docs/, inside the repository (a clone has no ``../shared``), and a
  ``#fragment`` names a heading of its target;
- paths: every code span naming a repository path (``ptacl_core/…``, ``configs/…``, ``notebooks/…``) exists;
- symbols: every ``ptacl_core.module.name`` code span, every link whose text names a symbol of the module it links to
  ([`losses.local_temporal_loss`](../ptacl_core/model/losses.py)) and every config key (``loss.lam``) exists;
- defaults: each row of a "| Default | Value | Code |" table states values read from the code (a dotted reference,
  ``Class().field``, ``function(param=...)`` for a parameter's default, ``notebooks/<nb>.ipynb:<parameter>`` or
  ``configs/<file>.json:<key>``): the value in the doc is compared with the code's, never with a number written here,
  and a few key defaults must be stated;
- sections: §1–§6 exist, and every "METHOD.md §N" cited in the code, notebooks, tests and READMEs names one of them.

Each rule is also fed a bad snippet, and must report it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "METHOD.md"
SECTIONS = tuple(range(1, 7))

CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]+)\)")
PATH_SPAN = re.compile(r"^(?:ptacl_core|configs|notebooks|tests|benchmarks|docs|data)/[^\s:]+")
QUALIFIED = re.compile(r"^ptacl_core(?:\.[A-Za-z_]\w*)+$")
CONFIG_KEY = re.compile(r"^(?:loss|optim|model)(?:\.[a-z_]\w*)+$")  # a TrainConfig override key
FILE_KEY = re.compile(r"^(?P<path>[\w./-]+\.(?:ipynb|json)):(?P<key>[\w.]+)$")
TABLE_HEADER = re.compile(r"^\|\s*Default\s*\|\s*Value\s*\|\s*Code\s*\|\s*$", re.IGNORECASE)
NUMBER = re.compile(r"^(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(?P<unit>[^\d\s,/][^\d,/]*)?$", re.IGNORECASE)
SECTION_CITATION = re.compile(r"METHOD\.md §(\d+)(?:\s*[–-]\s*§?(\d+))?")

# The key defaults the page must state (code references, compared as parsed expressions).
REQUIRED_DEFAULTS = (
    'ptacl_core.model.presets.PRESETS["tiny"].num_bins',
    "ptacl_core.training.config.LossConfig().temperature",
    "ptacl_core.training.config.LossConfig().local_temperature",
    "ptacl_core.training.config.LossConfig().lam",
    "ptacl_core.evaluation.probing.ProbeConfig().n_bootstrap",
    "ptacl_core.evaluation.statistics.LEVEL",
)


class Unresolved(Exception):
    """A code reference of the page that does not resolve (the message says why)."""


# --- resolving code references ------------------------------------------------------------------------------

def module_of(parts: list[str]) -> tuple[str, int]:
    """(module name, number of parts it takes) of the longest prefix of ``parts`` that is a module file of the repo."""
    for count in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:count])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts[:count]), count
    raise Unresolved(f"no module {'.'.join(parts[:2])}… in the repository")


def attribute(owner, name: str, where: str):
    """``owner.name``, a dataclass field without a class default included."""
    if hasattr(owner, name):
        return getattr(owner, name)
    if inspect.isclass(owner) and dataclasses.is_dataclass(owner) and name in {f.name for f in dataclasses.fields(owner)}:
        return dataclasses.MISSING
    raise Unresolved(f"{where} has no {name!r}")


def resolve_dotted(name: str):
    """The object a dotted name ``ptacl_core.pkg.module.Symbol.attr`` names (a module when it names one)."""
    parts = name.split(".")
    module_name, count = module_of(parts)
    value = importlib.import_module(module_name)
    where = module_name
    for part in parts[count:]:
        value = attribute(value, part, where)
        where = f"{where}.{part}"
    return value


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _evaluate(node: ast.AST, source: str):
    """The value of a code reference: dotted names, ``[constant]``, ``Class()`` (its defaults), ``f(param=...)`` (that
    parameter's default). Anything else is refused."""
    dotted = _dotted(node)
    if dotted is not None:
        if not dotted.startswith("ptacl_core."):
            raise Unresolved(f"{source}: a reference starts at ptacl_core")
        return resolve_dotted(dotted)
    if isinstance(node, ast.Attribute):
        owner = _evaluate(node.value, source)
        return attribute(owner, node.attr, ast.unparse(node.value))
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        owner = _evaluate(node.value, source)
        try:
            return owner[node.slice.value]
        except (KeyError, IndexError, TypeError) as error:
            raise Unresolved(f"{ast.unparse(node)}: {type(error).__name__} {error}") from error
    if isinstance(node, ast.Call) and not node.args:
        function = _evaluate(node.func, source)
        if not node.keywords and inspect.isclass(function):
            return function()
        if (len(node.keywords) == 1 and isinstance(node.keywords[0].value, ast.Constant)
                and node.keywords[0].value.value is Ellipsis and callable(function) and not inspect.isclass(function)):
            parameter = inspect.signature(function).parameters.get(node.keywords[0].arg)
            if parameter is None or parameter.default is inspect.Parameter.empty:
                raise Unresolved(f"{ast.unparse(node.func)} has no parameter {node.keywords[0].arg!r} with a default")
            return parameter.default
    raise Unresolved(f"{source}: not a supported reference (dotted name, [constant], Class(), function(param=...))")


def shown(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def notebook_parameter(path: Path, name: str):
    """The default of ``name`` in a notebook's cell tagged ``parameters``."""
    cells = [c for c in json.loads(path.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise Unresolved(f"{shown(path)} has no cell tagged 'parameters'")
    for statement in ast.parse("".join(cells[0]["source"])).body:
        if isinstance(statement, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in statement.targets):
            return ast.literal_eval(statement.value)
    raise Unresolved(f"{shown(path)} has no parameter {name!r}")


def code_value(reference: str):
    """The code's value of one reference of a defaults table."""
    found = FILE_KEY.match(reference)
    if found:
        path = ROOT / found["path"]
        if not path.is_file():
            raise Unresolved(f"{found['path']} does not exist")
        if path.suffix == ".ipynb":
            return notebook_parameter(path, found["key"])
        value = json.loads(path.read_text())
        for key in found["key"].split("."):
            if not isinstance(value, dict) or key not in value:
                raise Unresolved(f"{found['path']} has no key {found['key']!r}")
            value = value[key]
        return value
    try:
        tree = ast.parse(reference, mode="eval")
    except SyntaxError as error:
        raise Unresolved(f"{reference}: not a Python expression ({error.msg})") from error
    return _evaluate(tree.body, reference)


def reference_key(reference: str) -> str:
    """A reference in a form that ignores spacing and quote style."""
    try:
        return ast.dump(ast.parse(reference, mode="eval"))
    except SyntaxError:
        return reference.replace(" ", "")


# --- comparing a stated value with the code's ----------------------------------------------------------------

def parse_number(text: str) -> float:
    found = NUMBER.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a number (with an optional unit)")
    value = float(found["number"])
    return value / 100.0 if (found["unit"] or "").strip() == "%" else value


def mismatch(text: str, value) -> str | None:
    """Why the doc's ``text`` does not state ``value`` (None when it does)."""
    text = text.strip()
    plain = text[1:-1] if len(text) > 1 and text.startswith("`") and text.endswith("`") else text
    if isinstance(value, bool):
        words = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}
        if plain.lower() not in words:
            return f"{text!r} is not on/off"
        return None if words[plain.lower()] == value else f"says {text}, the code has {value}"
    if value is None or value is dataclasses.MISSING:
        return None if plain.lower() in ("none", "—") else f"says {text}, the code has no value ({value})"
    if isinstance(value, str):
        return None if plain == value else f"says {text}, the code has {value!r}"
    if isinstance(value, (int, float)):
        try:
            stated = parse_number(plain)
        except ValueError as error:
            return str(error)
        return None if math.isclose(stated, float(value), rel_tol=1e-9, abs_tol=1e-12) else f"says {text}, the code has {value}"
    if isinstance(value, (tuple, list)):
        items = [item.strip() for item in plain.split(",")]
        if len(items) != len(value):
            return f"says {text} ({len(items)} values), the code has {tuple(value)}"
        reasons = [mismatch(item, element) for item, element in zip(items, value, strict=True)]
        return None if not any(reasons) else f"says {text}, the code has {tuple(value)}"
    return f"cannot compare {text!r} with a {type(value).__name__}"


# --- the rules -------------------------------------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def link_problems(text: str, doc: Path = DOC) -> list[str]:
    problems = []
    for _, target in LINK.findall(text):
        if re.match(r"^[a-z][a-z+.-]*:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.is_relative_to(ROOT):
            problems.append(f"link {target}: resolves outside the repository (a clone has only the repository)")
        elif not resolved.exists():
            problems.append(f"link {target}: {resolved.relative_to(ROOT)} does not exist")
        elif fragment and (not path or resolved.suffix == ".md"):  # a heading (other fragments, e.g. #L10, are GitHub's)
            if fragment not in anchors(text if not path else resolved.read_text()):
                problems.append(f"link {target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    return problems


def path_problems(text: str) -> list[str]:
    problems = []
    for span in CODE_SPAN.findall(text):
        found = PATH_SPAN.match(span.strip())
        if found and not (ROOT / found.group(0)).exists():
            problems.append(f"`{span}`: {found.group(0)} does not exist")
    return problems


def _config_key_problem(key: str) -> str | None:
    from ptacl_core.training.config import TrainConfig

    owner, where = TrainConfig(), "TrainConfig"
    for part in key.split("."):
        if not dataclasses.is_dataclass(owner) or part not in {f.name for f in dataclasses.fields(owner)}:
            return f"config key `{key}`: {where} has no field {part!r}"
        owner, where = getattr(owner, part), f"{where}.{part}"
    return None


def _linked_symbol_problem(label: str, target: str, doc: Path) -> str | None:
    """The text of a link to a module of ptacl_core names that module's path or one of its symbols."""
    resolved = (doc.parent / target.partition("#")[0]).resolve()
    if resolved.suffix != ".py" or not resolved.is_file() or not resolved.is_relative_to(ROOT / "ptacl_core"):
        return None
    spans = CODE_SPAN.findall(label)
    if len(spans) != 1 or label.strip() != f"`{spans[0]}`":
        return None
    name = spans[0].strip()
    relative = resolved.relative_to(ROOT).as_posix()
    if "/" in name or name.endswith(".py"):
        return None if name == relative else f"link [`{name}`]: the text names {name}, the link goes to {relative}"
    module_parts = list(resolved.relative_to(ROOT).with_suffix("").parts)
    if module_parts[-1] == "__init__":
        module_parts = module_parts[:-1]
    parts = name.removesuffix("()").split(".")
    if parts[0] == module_parts[-1]:  # `losses.local_temporal_loss`, or the module alone: `losses`
        parts = parts[1:]
    try:
        resolve_dotted(".".join(module_parts + parts))
    except Unresolved as error:
        return f"link [`{name}`]({target}): {error}"
    return None


def symbol_problems(text: str, doc: Path = DOC) -> list[str]:
    problems = []
    for span in CODE_SPAN.findall(text):
        span = span.strip()
        if QUALIFIED.match(span):
            try:
                resolve_dotted(span)
            except Unresolved as error:
                problems.append(f"`{span}`: {error}")
        elif CONFIG_KEY.match(span):
            problem = _config_key_problem(span)
            if problem:
                problems.append(problem)
    for label, target in LINK.findall(text):
        problem = _linked_symbol_problem(label, target, doc)
        if problem:
            problems.append(problem)
    return problems


def default_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every row of every "| Default | Value | Code |" table."""
    lines, rows, inside = text.splitlines(), [], False
    for number, line in enumerate(lines, 1):
        if TABLE_HEADER.match(line):
            inside = True
            continue
        if inside and re.match(r"^\|[\s|:-]+\|$", line):
            continue
        if inside and line.startswith("|"):
            rows.append((number, [cell.strip() for cell in line.strip().strip("|").split("|")]))
            continue
        inside = False
    return rows


def default_problems(text: str, required: tuple[str, ...] = REQUIRED_DEFAULTS) -> list[str]:
    problems, stated = [], set()
    for number, cells in default_rows(text):
        if len(cells) != 3:
            problems.append(f"line {number}: a defaults row has 3 cells (default, value, code), got {len(cells)}")
            continue
        label, value_cell, code_cell = cells
        references = CODE_SPAN.findall(code_cell)
        values = [value.strip() for value in value_cell.split(" / ")]
        if not references or len(values) != len(references):
            problems.append(f"line {number} ({label}): {len(values)} value(s) for {len(references)} code reference(s)")
            continue
        for value, reference in zip(values, references, strict=True):
            stated.add(reference_key(reference))
            try:
                actual = code_value(reference)
            except (Unresolved, OSError, ValueError) as error:
                problems.append(f"line {number} ({label}): `{reference}` does not resolve: {error}")
                continue
            reason = mismatch(value, actual)
            if reason:
                problems.append(f"line {number} ({label}): `{reference}` {reason}")
    for reference in required:
        if reference_key(reference) not in stated:
            problems.append(f"the page states no default for `{reference}` (a defaults-table row)")
    return problems


def section_citations() -> list[tuple[str, int]]:
    """(file, section number) of every "METHOD.md §N" (or §N–M) cited in the code, notebooks, tests and READMEs."""
    files = [*(ROOT / "ptacl_core").rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "tests").glob("*.py"),
             *(ROOT / "benchmarks").glob("*.py"), ROOT / "README.md", ROOT / "data" / "README.md"]
    cited = []
    for path in files:
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        for first, last in SECTION_CITATION.findall(path.read_text(errors="replace")):
            for section in range(int(first), int(last or first) + 1):
                cited.append((path.relative_to(ROOT).as_posix(), section))
    return cited


def section_problems(text: str, citations: list[tuple[str, int]]) -> list[str]:
    present = {int(n) for n in re.findall(r"^## (\d+)\. ", text, re.MULTILINE)}
    problems = [f"no section '## {n}. …' (code and notebooks cite §1–§6)" for n in SECTIONS if n not in present]
    own = [("docs/METHOD.md", int(n)) for n in re.findall(r"§(\d+)", text)]
    problems += [f"{where} cites METHOD.md §{n}, which the page lacks" for where, n in [*citations, *own] if n not in present]
    return problems


def problems_of(text: str, doc: Path = DOC) -> list[str]:
    return [*link_problems(text, doc), *path_problems(text), *symbol_problems(text, doc), *default_problems(text),
            *section_problems(text, section_citations())]


# --- the page as it is ---------------------------------------------------------------------------------------

def test_the_method_page_is_current_with_the_code():
    problems = problems_of(DOC.read_text())
    assert not problems, "docs/METHOD.md is out of date:\n" + "\n".join(problems)


def test_the_page_checks_something():
    """The rules have material: links into the package, defaults tables, the section headings."""
    text = DOC.read_text()
    assert len([t for _, t in LINK.findall(text) if t.startswith("../ptacl_core/")]) >= 30
    assert len(default_rows(text)) >= 20
    assert len(section_citations()) >= 10


# --- each rule against a bad input -----------------------------------------------------------------------------

TABLE = "| Default | Value | Code |\n|---|---|---|\n"
TINY_K = '`ptacl_core.model.presets.PRESETS["tiny"].num_bins`'


@pytest.mark.parametrize("rule, snippet", [
    (link_problems, "[losses](../ptacl_core/model/losses.py), [endpoints](../configs/endpoints.json#x)"
                    " [site](https://example.org) [up](#1-data-contract)\n## 1. Data contract"),
    (path_problems, "`ptacl_core/model/phases.py`, `configs/endpoints.json:alpha`, `notebooks/02_pretraining.ipynb`"),
    (symbol_problems, "`ptacl_core.model.losses.local_temporal_loss`, `ptacl_core.io.ecg` [`losses.PTACLLoss`]"
                      "(../ptacl_core/model/losses.py) [`ecg.read_ecg`](../ptacl_core/io/ecg/__init__.py) [`losses`](../ptacl_core/model/losses.py)"
                      " [`ptacl_core/model/phases.py`](../ptacl_core/model/phases.py) `loss.lam` `model.ecg.token_leads`"
                      " [`encoders.PTACLModel.phase_embeddings`](../ptacl_core/model/encoders.py)"),
    (lambda text: default_problems(text, required=()),
     TABLE + f"| K / τ | 7 / 0.1 | {TINY_K}, `ptacl_core.training.config.LossConfig().temperature` |\n"
             "| confidence / soft targets | 95 % / on | `ptacl_core.evaluation.statistics.LEVEL`, "
             "`ptacl_core.training.config.LossConfig().soft_targets` |\n"
             "| variant / fractions | `per_patient` / 0.01, 0.1, 1 | `ptacl_core.training.config.LossConfig().local_variant`, "
             "`ptacl_core.evaluation.probing.ProbeConfig().fractions` |\n"
             "| resamples / seeds / α | 1000 / 5 / 0.05 | `ptacl_core.evaluation.comparison.summarise_retrieval(n_bootstrap=...)`, "
             "`notebooks/02_pretraining.ipynb:seeds`, `configs/endpoints.json:alpha` |\n"),
])
def test_a_rule_passes_good_input(rule, snippet):
    assert rule(snippet) == []


@pytest.mark.parametrize("rule, snippet, expected", [
    # links
    (link_problems, "[gone](../ptacl_core/model/nothing.py)", "does not exist"),
    (link_problems, "[from the root](ptacl_core/model/losses.py)", "does not exist"),  # links resolve from docs/
    (link_problems, "[the spec](../../shared/METHOD.md)", "outside the repository"),
    (link_problems, "[there](#no-such-heading)\n## 1. Data contract", "no heading #no-such-heading"),
    (link_problems, "[readme](../README.md#no-such-heading)", "no heading #no-such-heading"),
    # paths
    (path_problems, "see `ptacl_core/model/nothing.py`", "does not exist"),
    (path_problems, "`notebooks/99_missing.ipynb:seeds`", "does not exist"),
    # symbols
    (symbol_problems, "`ptacl_core.model.losses.no_such_loss`", "no 'no_such_loss'"),
    (symbol_problems, "`ptacl_core.model.nowhere.function`", "ptacl_core.model.nowhere"),
    (symbol_problems, "`ptacl_core.model.losses.PTACLLoss.no_such_method`", "no 'no_such_method'"),
    (symbol_problems, "[`losses.no_such_loss`](../ptacl_core/model/losses.py)", "no 'no_such_loss'"),
    (symbol_problems, "[`phases.local_temporal_loss`](../ptacl_core/model/losses.py)", "no 'phases'"),
    (symbol_problems, "[`losses.PTACLLoss.no_such_method`](../ptacl_core/model/losses.py)", "no 'no_such_method'"),
    (symbol_problems, "[`ptacl_core/model/phases.py`](../ptacl_core/model/losses.py)", "the link goes to"),
    (symbol_problems, "`loss.no_such_key`", "no field 'no_such_key'"),
    (symbol_problems, "`model.ecg.no_such_size`", "no field 'no_such_size'"),
    # defaults
    (default_problems, TABLE + f"| K | 8 | {TINY_K} |\n", "says 8"),
    (default_problems, TABLE + "| λ | 2 | `ptacl_core.training.config.LossConfig().lam` |\n", "says 2"),
    (default_problems, TABLE + "| resamples | 100 | `ptacl_core.evaluation.probing.ProbeConfig().n_bootstrap` |\n", "says 100"),
    (default_problems, TABLE + "| confidence | 90 % | `ptacl_core.evaluation.statistics.LEVEL` |\n", "says 90 %"),
    (default_problems, TABLE + "| soft targets | off | `ptacl_core.training.config.LossConfig().soft_targets` |\n", "says off"),
    (default_problems, TABLE + "| soft targets | maybe | `ptacl_core.training.config.LossConfig().soft_targets` |\n",
     "not on/off"),
    (default_problems, TABLE + "| variant | `cross_patient` | `ptacl_core.training.config.LossConfig().local_variant` |\n",
     "says `cross_patient`"),
    (default_problems, TABLE + "| fractions | 0.01, 1 | `ptacl_core.evaluation.probing.ProbeConfig().fractions` |\n",
     "2 values"),
    (default_problems, TABLE + "| τ | about a tenth | `ptacl_core.training.config.LossConfig().temperature` |\n",
     "not a number"),
    (default_problems, TABLE + "| τ | 0.1 | `ptacl_core.training.config.LossConfig().no_such` |\n", "does not resolve"),
    (default_problems, TABLE + f"| K + 1 | 8 | `{TINY_K.strip('`')} + 1` |\n", "not a supported reference"),
    (default_problems, TABLE + "| resamples | 1000 | `ptacl_core.evaluation.comparison.summarise_retrieval(no_such=...)` |\n",
     "no parameter 'no_such'"),
    (default_problems, TABLE + "| π | 3.14 | `math.pi` |\n", "a reference starts at ptacl_core"),
    (default_problems, TABLE + "| σ | 0.05 | `ptacl_core.training.config.LossConfig().soft_sigma` |\n", "has no value"),
    (default_problems, TABLE + "| weights | 0.5 | `ptacl_core.synthetic.config.SynthConfig().condition_weights` |\n",
     "cannot compare"),
    (default_problems, TABLE + "| seeds | 5 | `notebooks/02_pretraining.ipynb:no_such` |\n", "no parameter 'no_such'"),
    (default_problems, TABLE + "| α | 0.05 | `configs/endpoints.json:no_such` |\n", "no key 'no_such'"),
    (default_problems, TABLE + "| K / τ | 7 | " + TINY_K + ", `ptacl_core.training.config.LossConfig().temperature` |\n",
     "1 value(s) for 2 code reference(s)"),
    (default_problems, TABLE + "| K | 7 |\n", "3 cells"),
    (default_problems, TABLE + f"| K | 7 | {TINY_K} |\n", "states no default for `ptacl_core.training.config.LossConfig().lam`"),
])
def test_a_rule_reports_bad_input(rule, snippet, expected):
    problems = rule(snippet) if rule is not default_problems else default_problems(
        snippet, required=() if "states no default" not in expected else REQUIRED_DEFAULTS)
    assert any(expected in problem for problem in problems), problems


def test_a_notebook_without_a_parameters_cell_is_reported(tmp_path):
    notebook = tmp_path / "untagged.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": ["seeds = 5\n"]}]}))
    with pytest.raises(Unresolved, match="no cell tagged 'parameters'"):
        notebook_parameter(notebook, "seeds")


def test_a_missing_section_or_a_cited_one_the_page_lacks_is_reported():
    headings = "".join(f"## {n}. Part {n}\n" for n in SECTIONS)
    assert section_problems(headings, [("notebooks/03.ipynb", 5)]) == []
    without_five = headings.replace("## 5. Part 5\n", "")
    assert any("no section '## 5." in p for p in section_problems(without_five, []))
    assert any("notebooks/03.ipynb cites METHOD.md §5" in p for p in section_problems(without_five, [("notebooks/03.ipynb", 5)]))
    assert any("cites METHOD.md §7" in p for p in section_problems(headings + "see §7", []))


def test_section_citations_read_ranges():
    """"METHOD.md §4-5" and "§3–4" cite both sections."""
    assert SECTION_CITATION.findall("METHOD.md §4-5, METHOD.md §3–4 and METHOD.md §2") == [("4", "5"), ("3", "4"), ("2", "")]
