"""The comparison's training plan (what notebook 02 trains, METHOD.md §5): which (method, seed) runs in which order
(``training_plan``), each run's config from the settings every run shares (``PlanSettings.config``), and training
the plan in order (``train_plan``). Runs are named ``runs.run_name(method, preset, seed, fast)``, so a finished run
is found (``runs.find_runs``) and not retrained, and an interrupted one resumes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ptacl_core.methods import METHODS, check_trainable
from ptacl_core.model.presets import preset as lookup_preset
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.loop import train
from ptacl_core.training.runs import run_name


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


def train_plan(plan: Iterable[tuple[str, int]], settings: PlanSettings, progress: bool = True
               ) -> dict[tuple[str, int], Path]:
    """Train (or resume, or find finished) every (method, seed) of the plan in order; returns their run folders. A
    method that starts from other runs (``ptacl_mae``) is initialised from those of the same seed, planned before it."""
    plan = list(plan)
    folders: dict[tuple[str, int], Path] = {}
    # one bar for the whole plan, in epochs (a bar per run and epoch would leave hundreds of widgets in notebook 02)
    bar = tqdm(total=len(plan) * settings.epochs, desc="training plan", unit="epoch", disable=not progress)

    def advance(row: dict) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{row['val_loss']:.3f}")

    for position, (method, seed) in enumerate(plan, 1):
        starts_from = ",".join(str(folders[(m, seed)]) for m in METHODS[method].starts_from)
        config = settings.config(method, seed, starts_from)
        bar.set_description(f"{config.name} ({position}/{len(plan)})")
        folders[(method, seed)] = train(config, progress=False, on_epoch=advance)
        bar.update(position * settings.epochs - bar.n)  # a finished or resumed run counts its earlier epochs too
    bar.close()
    return folders
