"""Run the numbered notebooks in order with papermill (``python -m ptacl_core run``).

Each notebook runs in the environment's own Python: the runner writes a kernel spec pointing at
``sys.executable`` into a private folder on ``JUPYTER_PATH``, so no per-user kernel registration is needed
and a user's other kernels are never picked by mistake. Executed copies go to ``outputs/notebooks/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ptacl_core import paths

KERNEL_NAME = "python3"


class NotebookFailed(RuntimeError):
    def __init__(self, notebook: Path, cell_index: int | None, detail: str, executed: Path):
        self.notebook, self.cell_index, self.executed = notebook, cell_index, executed
        where = f"cell {cell_index}" if cell_index is not None else "before any cell ran"
        super().__init__(f"{notebook.name} failed at {where}: {detail}\n  executed copy: {executed}")


@dataclass(frozen=True)
class NotebookRun:
    notebook: Path
    executed: Path
    seconds: float


@dataclass(frozen=True)
class Step:
    """One notebook execution: its parameters, where the executed copy goes, and the cohort pass it belongs to."""

    notebook: Path
    parameters: dict
    output_dir: Path
    label: str = ""


COHORT_NOTEBOOKS = ("01", "02", "03", "04", "05")  # run once per cohort; 00 writes both cohorts
INTERACTIVE_NOTEBOOKS = ("06",)  # widgets for JupyterLab: run only when asked for (``--only 06``), never by default
SCALING_NOTEBOOK = "07"  # the scaling profile's figure: listed only when asked for (``--profile scaling``, ``--only 07``)
SCALING_POINT_NOTEBOOKS = ("00", "01", "02", "03", "04")  # what the scaling profile runs at each N, both cohorts
ENCODER_NOTEBOOK = "08"  # the encoder choice: listed only when asked for (``--profile encoders``, ``--only 08``)
ENCODER_SHARED, ENCODER_PER_PRESET = ("00", "01"), ("02", "03", "04")  # the cohort and cache once; runs per preset
ENCODERS = "encoders"  # the folder of the encoders profile under figures/
OPT_IN_NOTEBOOKS = (*INTERACTIVE_NOTEBOOKS, SCALING_NOTEBOOK, ENCODER_NOTEBOOK)  # never run by default
TWIN_LABEL = "null twin"
TWIN_FOLDER = "null_twin"
# The twin pass trains the headline comparison only (PTACL and global-only, with the cohort's seeds): the null
# control of the powered comparison; the variants, the sham arm and the baselines run on the physiological cohort.
TWIN_TRAINING = {"baselines": "", "variants": ""}

# Run profiles (``python -m ptacl_core run --profile NAME``): notebook parameters applied before any ``-p``.
# default: `make reproduce` (<= 20 min on 2 CPU cores); full: longer CPU runs, every variant and baseline; paper:
# the ViT-B preset on a GPU (its own cache, built by notebook 01 with the `default` preprocessing preset).
PROFILES: dict[str, dict] = {
    "default": {},
    "full": {"epochs": 40, "seeds": 10, "variants": "ptacl_cross,ptacl_sham,ptacl_noaug,ptacl_mae,local",
             "variant_seeds": 5, "baselines": "mae_ecg,mae_cmr,supervised", "baseline_seeds": 3},
    # batch 64 per GPU: 128 is estimated at 81 GiB (benchmarks/gpu_check.py --cpu), more than an 80 GB H100
    "paper": {"preset": "paper", "epochs": 100, "batch_size": 64, "lr": 0.0003, "seeds": 5,
              "variants": "ptacl_cross,ptacl_sham,ptacl_mae", "variant_seeds": 3, "baselines": "mae_ecg,mae_cmr,supervised",
              "baseline_seeds": 1, "device": "cuda"},
    # the headline comparison and the reference rows at each N of ``scaling_sizes``, both cohorts (``scaling_steps``)
    "scaling": {"methods": "global,ptacl", "seeds": 3, "variants": "", "baselines": "", "fractions": "1",
                "realism_subjects": 50, "audit_measured": 100, "scaling_sizes": "1000,2000,4000,8000"},
    # the ViT and the 1-D ResNet ECG encoder on the same cache, chosen on validation, both reported (``encoder_steps``)
    "encoders": {"methods": "global,ptacl", "seeds": 3, "variants": "", "baselines": "", "null_twin": False,
                 "encoder_presets": "tiny,tiny_resnet"},
}

SCALING_SIZES = (1000, 2000, 4000, 8000)  # subjects per cohort (METHOD.md §5)
SCALING = "scaling"  # the folder of the scaling profile under data/, runs/, figures/ and the executed notebooks
MIN_SCALING_SIZE = 20  # fewer subjects leave a test split of 3: no probe to fit or score
FAST_COHORT = 40  # notebook 00 caps a fast run's cohort at this many subjects
# the folders and sizes a scaling point sets itself (``ScalingPoint``): move them with PTACL_DATA / _RUNS / _FIGURES
SCALING_OWNS = ("n_subjects", "cohort_dir", "null_dir", "reuse_dir", "cache_dir", "runs_dir", "figures_dir")
DISPATCH = ("scaling_sizes", "encoder_presets")  # parameters that choose the plan (``run_notebooks``)


def parse_sizes(value) -> tuple[int, ...]:
    """Cohort sizes from ``"1000,2000"`` (or a number, or a sequence), ascending; a ValueError naming the bad one."""
    items = [value] if isinstance(value, (int, float)) or value is None else str(value).split(",") \
        if isinstance(value, str) else list(value)
    sizes = []
    for item in items:
        text = str(item).strip()
        if not text.isdigit() or int(text) < MIN_SCALING_SIZE:
            raise ValueError(f"scaling_sizes: {text!r} is not a cohort size (a whole number >= {MIN_SCALING_SIZE})")
        sizes.append(int(text))
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(f"scaling_sizes: {value!r} must list distinct cohort sizes")
    return tuple(sorted(sizes))


@dataclass(frozen=True)
class ScalingPoint:
    """Where one N of the scaling profile lives: its two cohorts, caches, runs and figures under ``scaling/n<N>``
    of the data, runs and figures roots (``paths``). The null twin's folders follow ``twin_parameters``."""

    n: int

    @property
    def name(self) -> str:
        return f"n{self.n}"

    @property
    def cohort_dir(self) -> Path:
        return paths.data_root() / SCALING / self.name / "synthetic"

    @property
    def null_dir(self) -> Path:
        return self.cohort_dir.with_name("synthetic_null")

    @property
    def cache_dir(self) -> Path:
        return paths.data_root() / SCALING / self.name / "cache"

    @property
    def runs_dir(self) -> Path:
        return paths.runs_root() / SCALING / self.name

    @property
    def figures_dir(self) -> Path:
        return paths.figures_root() / SCALING / self.name

    def parameters(self) -> dict:
        """The notebook parameters of this point (its twin's come from ``twin_parameters``)."""
        return {"n_subjects": self.n, "cohort_dir": str(self.cohort_dir), "null_dir": str(self.null_dir),
                "cache_dir": str(self.cache_dir), "runs_dir": str(self.runs_dir), "figures_dir": str(self.figures_dir)}


def profile_parameters(name: str) -> dict:
    """The notebook parameters of a run profile (a clear error for an unknown one)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; profiles: {sorted(PROFILES)}")
    return dict(PROFILES[name])


def twin_parameters(parameters: dict) -> dict:
    """The null twin's pass: the same parameters with the twin's cohort (``<cohort>_null``, or
    ``data/synthetic_null``), cache, runs and figures folders (``<…>/null_twin``), and its label."""
    twin = dict(parameters)
    cohort = parameters.get("cohort_dir")
    if parameters.get("null_dir"):  # where notebook 00 was told to write the twin
        twin["cohort_dir"] = str(parameters["null_dir"])
    else:
        twin["cohort_dir"] = str(Path(str(cohort)).with_name(Path(str(cohort)).name + "_null")) if cohort else str(paths.null_cohort_dir())
    if parameters.get("cache_dir"):
        twin["cache_dir"] = f"{parameters['cache_dir']}_null"
    twin["runs_dir"] = str(Path(parameters.get("runs_dir") or paths.runs_root()) / TWIN_FOLDER)
    twin["figures_dir"] = str(Path(parameters.get("figures_dir") or paths.figures_root()) / TWIN_FOLDER)
    twin["cohort_label"] = TWIN_LABEL
    twin.update(TWIN_TRAINING)
    return twin


def plan_steps(notebooks: list[Path], output_dir: Path, parameters: dict, twin: bool = True) -> list[Step]:
    """The order ``make reproduce`` runs: 00 (both cohorts), then 01-05 on the null twin, then 01-05 on the
    physiological cohort, whose report shows the twin beside it. twin=False: one pass."""
    single = [n for n in notebooks if n.name[:2] not in COHORT_NOTEBOOKS]
    per_cohort = [n for n in notebooks if n.name[:2] in COHORT_NOTEBOOKS]
    after = [n for n in single if per_cohort and n.name > per_cohort[-1].name]  # e.g. 06 after 01-03: numeric order
    steps = [Step(n, parameters, output_dir) for n in single if n not in after]
    main = dict(parameters)
    if twin and per_cohort:
        twin_values = twin_parameters(parameters)
        steps += [Step(n, twin_values, output_dir / TWIN_FOLDER, TWIN_LABEL) for n in per_cohort]
        main.setdefault("twin_figures_dir", twin_values["figures_dir"])
    steps += [Step(n, main, output_dir) for n in per_cohort]
    return steps + [Step(n, parameters, output_dir) for n in after]


def scaling_steps(notebooks: list[Path], output_dir: Path, parameters: dict) -> list[Step]:
    """The scaling profile: at each N of ``parameters["scaling_sizes"]``, ascending, notebooks 00-04 as
    ``plan_steps`` runs them (the twin's 01-04 first) in that point's folders (``ScalingPoint``), each cohort
    growing from the previous N's (``reuse_dir``: its subjects are linked, not generated again); then notebook 07
    over all points. Executed copies go to ``<output_dir>/scaling/n<N>/`` (07's to ``output_dir``)."""
    sizes = parse_sizes(parameters["scaling_sizes"])
    owned = [name for name in SCALING_OWNS if parameters.get(name) is not None]
    if owned:
        raise ValueError(f"the scaling profile sets {owned} itself at each N (data/, runs/, figures/ scaling/n<N>/); "
                         "move its roots with PTACL_DATA, PTACL_RUNS and PTACL_FIGURES instead")
    if parameters.get("fast") and max(sizes) > FAST_COHORT:
        raise ValueError(f"scaling_sizes {list(sizes)}: a fast run caps every cohort at {FAST_COHORT} subjects, so these "
                         f"points would be the same cohort; give sizes up to {FAST_COHORT} (e.g. -p scaling_sizes 30,40)")
    per_point = [n for n in notebooks if n.name[:2] in SCALING_POINT_NOTEBOOKS]
    summary = [n for n in notebooks if n.name[:2] == SCALING_NOTEBOOK]
    steps, previous = [], None
    for n in sizes:
        point = ScalingPoint(n)
        values = {**parameters, **point.parameters(), "reuse_dir": str(previous.cohort_dir) if previous else None}
        steps += plan_steps(per_point, output_dir / SCALING / point.name, values, twin=True)
        previous = point
    executed = parameters.get("executed_dir") or str(output_dir / SCALING)
    return steps + [Step(n, {**parameters, "executed_dir": executed}, output_dir) for n in summary]


def parse_presets(value) -> tuple[str, ...]:
    """Model presets from ``"tiny,tiny_resnet"``: two or more, distinct (notebook 08 checks that they share one
    preprocessing preset: the encoders must be compared on the same cache)."""
    names = [name.strip() for name in str(value).split(",") if name.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"encoder_presets: {value!r} must list two or more distinct model presets")
    return tuple(names)


def encoder_figures_dir(parameters: dict, preset: str | None = None) -> Path:
    """``<figures>/encoders`` (the choice), or ``<figures>/encoders/<preset>`` (that preset's tables and figures)."""
    root = Path(parameters.get("figures_dir") or paths.figures_root()) / ENCODERS
    return root / preset if preset else root


def encoder_steps(notebooks: list[Path], output_dir: Path, parameters: dict) -> list[Step]:
    """The encoders profile: notebooks 00 and 01 once (the cohort, without its twin, and the cache every preset
    shares), then 02-04 for each preset of ``parameters["encoder_presets"]`` in its own figures folder (run names
    carry the preset, so they share ``runs/``), then notebook 08 over all of them. Executed copies of a preset's
    notebooks go to ``<output_dir>/encoders/<preset>/`` (00 and 01 to ``<output_dir>/encoders/``); runs to
    ``runs/encoders/`` and figures to ``figures/encoders/`` unless ``runs_dir`` / ``figures_dir`` say otherwise."""
    presets = parse_presets(parameters["encoder_presets"])
    # its own runs and figures: the ViT's runs of `make reproduce` (5 seeds, variants) must not join the comparison
    shared = {**parameters, "runs_dir": str(parameters.get("runs_dir") or paths.runs_root() / ENCODERS),
              "figures_dir": str(encoder_figures_dir(parameters))}
    steps = [Step(n, shared, output_dir / ENCODERS) for n in notebooks if n.name[:2] in ENCODER_SHARED]
    for preset in presets:
        values = {**shared, "preset": preset, "figures_dir": str(encoder_figures_dir(parameters, preset))}
        steps += [Step(n, values, output_dir / ENCODERS / preset, preset) for n in notebooks
                  if n.name[:2] in ENCODER_PER_PRESET]
    return steps + [Step(n, shared, output_dir) for n in notebooks if n.name[:2] == ENCODER_NOTEBOOK]


def list_notebooks(notebooks_dir: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks (``NN_name.ipynb``) in order; ``only`` keeps those whose number is listed. The
    interactive ones (``INTERACTIVE_NOTEBOOKS``), the scaling figure and the encoder choice (``OPT_IN_NOTEBOOKS``)
    are listed only when ``only`` names them."""
    notebooks_dir = notebooks_dir or paths.notebooks_dir()
    found = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {number.strip().zfill(2) for number in only}
        unknown = wanted - {p.name[:2] for p in found}
        if unknown:
            raise ValueError(f"no notebook numbered {sorted(unknown)} in {notebooks_dir}")
        return [p for p in found if p.name[:2] in wanted]
    return [p for p in found if p.name[:2] not in OPT_IN_NOTEBOOKS]


def parse_value(text: str):
    """Parameter values from the command line: int, float, true/false, none, else the string."""
    lowered = text.lower()
    if (text.isdigit() and len(text) > 1 and text.startswith("0")) or lowered in {"nan", "inf", "-inf"}:
        return text  # an id like 007, not the number 7
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _kernel_spec_dir() -> Path:
    """A JUPYTER_PATH entry whose ``python3`` kernel is this interpreter."""
    # one folder per interpreter: two checkouts running notebooks at once must not swap kernels (and packages)
    interpreter = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"ptacl-kernels-{os.getuid() if hasattr(os, 'getuid') else 'user'}-{interpreter}"
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ptacl kit)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


def _failing_cell(notebook: Path, executed: Path) -> int | None:
    """Index (0-based, as in the committed notebook) of the first code cell whose executed copy holds an
    error. The executed copy has papermill's extra cells, so the cell is matched by its id or source."""
    import nbformat  # lazy: ~1 s at import (jsonschema), needed only to locate a failed cell

    try:
        original = nbformat.read(notebook, as_version=4).cells
        cells = nbformat.read(executed, as_version=4).cells
    except Exception:
        return None
    for cell in cells:
        if cell.cell_type == "code" and any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            for index, candidate in enumerate(original):
                if candidate.get("id") == cell.get("id") or candidate.source == cell.source:
                    return index
    return None


def run_notebooks(notebooks: list[Path], output_dir: Path | None = None, parameters: dict | None = None,
                  fast: bool = False, log=print, progress_bar: bool = True, twin: bool = False,
                  profile: dict | None = None) -> list[NotebookRun]:
    """Execute notebooks in order; stop at the first failure (raises ``NotebookFailed``). twin: run notebooks
    01-05 on the null twin first, then on the cohort (``plan_steps``); a twin cohort that does not exist by then
    (e.g. your own data) is skipped with a note. A ``scaling_sizes`` parameter runs the scaling profile instead
    (``scaling_steps``: always with the twin), an ``encoder_presets`` parameter the encoders profile
    (``encoder_steps``: without it). profile: a run profile's parameters, overridden by ``parameters``;
    unlike those, a profile parameter that none of ``notebooks`` declares is not an error (``--only 07``)."""
    import papermill  # lazy: ~1 s at import (nbclient, jupyter), needed only to execute notebooks
    from papermill.exceptions import PapermillExecutionError  # lazy: with papermill

    output_dir = Path(output_dir) if output_dir else paths.outputs_root() / "notebooks"
    output_dir.mkdir(parents=True, exist_ok=True)
    parameters = dict(parameters or {})
    if fast:
        parameters["fast"] = True
    declared = {notebook: set(papermill.inspect_notebook(str(notebook))) for notebook in notebooks}
    unknown = set(parameters) - set().union(*declared.values()) - {"fast", *DISPATCH}
    if unknown:
        raise ValueError(f"parameter(s) {sorted(unknown)} are not declared by any of {[n.name for n in notebooks]}")
    parameters = {**(profile or {}), **parameters}
    if "scaling_sizes" in parameters:
        if not twin:
            raise ValueError("the scaling profile runs both cohorts at each N: --no-twin does not apply to it")
        steps = scaling_steps(notebooks, output_dir, parameters)
    elif "encoder_presets" in parameters:
        steps = encoder_steps(notebooks, output_dir, parameters)
    else:
        steps = plan_steps(notebooks, output_dir, parameters, twin)
    if not steps:
        raise ValueError(f"nothing to run: {[n.name for n in notebooks]} have no step in this plan "
                         "(the scaling profile runs 00-04 and 07, the encoders profile 00-04 and 08)")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(_kernel_spec_dir()), os.environ.get("JUPYTER_PATH")]))
    os.environ.setdefault("MPLBACKEND", "Agg")
    runs = []
    total_start = time.perf_counter()
    skipped_twin = False
    for position, step in enumerate(steps, 1):
        notebook = step.notebook
        if step.label == TWIN_LABEL and not (Path(step.parameters["cohort_dir"]) / "manifest.csv").exists():
            if not skipped_twin:
                log(f"no null twin at {step.parameters['cohort_dir']}: its pass is skipped", flush=True)
            skipped_twin = True
            continue
        step.output_dir.mkdir(parents=True, exist_ok=True)
        executed = step.output_dir / notebook.name
        name = f"{notebook.name} ({step.label})" if step.label else notebook.name
        log(f"[{position}/{len(steps)}] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook), str(executed), kernel_name=KERNEL_NAME,
                parameters={k: v for k, v in step.parameters.items() if k in declared[notebook]},
                cwd=str(notebook.parent), progress_bar=progress_bar, log_output=False,
            )
        except PapermillExecutionError as error:
            detail = f"{error.ename}: {error.evalue}"
            raise NotebookFailed(notebook, _failing_cell(notebook, executed), detail, executed) from None
        except Exception as error:  # kernel died, bad notebook JSON, missing kernel...
            raise NotebookFailed(notebook, None, f"{type(error).__name__}: {error}", executed) from error
        seconds = time.perf_counter() - start
        log(f"[{position}/{len(steps)}] {name} done in {seconds:.1f} s", flush=True)
        runs.append(NotebookRun(notebook, executed, seconds))
    log(f"all {len(runs)} notebook(s) done in {time.perf_counter() - total_start:.1f} s; executed copies in {output_dir}")
    return runs
