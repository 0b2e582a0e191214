"""The comparison's training plan (what notebook 02 trains, METHOD.md §5): which (method, seed) runs in which order
(``training_plan``), each run's config from the settings every run shares (``PlanSettings.config``), and training
the plan (``train_plan``) through the grid executor (``executor``: a process pool, one run per GPU, or Slurm).
Runs are named ``runs.run_name(method, preset, seed, fast)``, so a finished run is found (``runs.find_runs``) and
not retrained, and an interrupted one resumes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ptacl_core.methods import METHODS, check_trainable
from ptacl_core.model.presets import preset as lookup_preset
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.executor import GridFailed, GridJob, execute
from ptacl_core.training.runs import run_folder_of, run_name


def training_plan(methods: list[str], seeds: int, baselines: list[str] = (), baseline_seeds: int = 1,
                  variants: list[str] = (), variant_seeds: int = 3) -> list[tuple[str, int]]:
    """(method, seed) pairs to train, in order: the compared ``methods`` with ``seeds`` seeds each, then the PTACL
    ``variants`` with ``variant_seeds`` each, then the other ``baselines`` with ``baseline_seeds`` each (a method
    listed twice keeps its first place). A method that starts from other runs (``ptacl_mae``: the mae_ecg and
    mae_cmr runs of the same seed) gets them planned before it."""
    plan: list[tuple[str, int]] = []
    for group, count in ((methods, seeds), (variants, variant_seeds), (baselines, baseline_seeds)):
        for method in dict.fromkeys(group):
            check_trainable(method)
            if any(m == method for m, _ in plan):
                continue
            for seed in range(count):
                for needed in (*METHODS[method].starts_from, method):
                    if (needed, seed) not in plan:
                        plan.append((needed, seed))
    return plan


@dataclass(frozen=True)
class PlanSettings:
    """What every run of a plan shares (notebook 02's parameters). cache: the training cache folder; runs_dir: where
    the run folders go; num_bins: K (None or 0: the preset's); fast: the tests' tiny runs (``_fast`` names)."""

    preset: str
    cache: str | Path
    runs_dir: str | Path
    epochs: int
    batch_size: int
    lr: float
    lam: float
    num_bins: int | None = None
    fast: bool = False
    device: str = "auto"
    threads: int = 0

    def config(self, method: str, seed: int, init_from: str = "") -> TrainConfig:
        """The TrainConfig of one planned run; init_from: the checkpoints it starts from (``Method.starts_from``)."""
        config = TrainConfig(method=method, cache=str(self.cache), runs_dir=str(self.runs_dir), device=self.device,
                             name=run_name(method, self.preset, seed, self.fast), seed=seed, init_from=init_from,
                             threads=self.threads)
        config = config.with_overrides({"preset": self.preset, "optim.epochs": self.epochs,
                                        "optim.batch_size": self.batch_size, "optim.lr": self.lr, "loss.lam": self.lam})
        if self.num_bins:
            config = config.with_overrides({"loss.num_bins": self.num_bins})
        return config

    @property
    def phase_bins(self) -> int:
        """K of every run of the plan: ``num_bins``, or the preset's."""
        return self.num_bins or lookup_preset(self.preset).num_bins


def grid_jobs(plan: Iterable[tuple[str, int]], settings: PlanSettings) -> list[GridJob]:
    """The plan as executor jobs: each run's config, and for a method that starts from other runs (``ptacl_mae``)
    those of the same seed as its prerequisites (their folders in ``init_from``)."""
    jobs = []
    for method, seed in plan:
        after = tuple((m, seed) for m in METHODS[method].starts_from)
        init_from = ",".join(str(run_folder_of(settings.runs_dir, run_name(m, settings.preset, seed, settings.fast)))
                             for m, _ in after)
        jobs.append(GridJob((method, seed), settings.config(method, seed, init_from), after))
    return jobs


def train_plan(plan: Iterable[tuple[str, int]], settings: PlanSettings, progress: bool = True,
               backend: str = "auto", workers: int | None = None, slurm: dict | None = None, log=print
               ) -> dict[tuple[str, int], Path]:
    """Train (or resume, or find finished) every (method, seed) of the plan with the executor ``backend``
    (``executor.BACKENDS``; auto: a process pool on a multi-core CPU, one run per GPU on a GPU node); returns their
    run folders. A failed run does not stop the others: once all have run, ``GridFailed`` names each failure and its
    log (run the cell again: finished runs are skipped, the failed ones start again)."""
    report = execute(grid_jobs(plan, settings), backend, workers=workers, threads=settings.threads or None,
                     slurm=slurm, progress=progress, log=log)
    if report.failed:
        raise GridFailed(report)
    return report.folders()
