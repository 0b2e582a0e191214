"""Training: ``config`` (TrainConfig) -> ``objective`` (what each method optimises: the objective classes the method
registry names) -> ``loop`` (train: ``setup`` of device, DDP, data, objective, optimiser and resume; ``epoch``, one
training epoch; ``validation``, the validation loss and phase-clock margin) -> ``runs`` (the run folder: names,
checkpoints, metrics, finding finished runs); ``plan`` (the comparison's runs, what notebook 02 trains) run by
``executor`` (the grid on this machine: sequential, a process pool, one run per GPU, or Slurm via submitit).

Importing ``ptacl_core.training.runs`` (as evaluation and prediction do) does not import the loop.
"""

from ptacl_core.training.config import LossConfig, OptimConfig, TrainConfig, load_config
from ptacl_core.training.runs import find_runs, load_model, run_name

__all__ = ["LossConfig", "OptimConfig", "TrainConfig", "find_runs", "load_config", "load_model", "run_name", "train"]


def __getattr__(name: str):
    if name == "train":  # the loop (DataLoader, DDP) only when asked for: importing training.runs must not load it
        from ptacl_core.training.loop import train  # lazy: evaluation and prediction import the package, not the loop

        return train
    raise AttributeError(f"module 'ptacl_core.training' has no attribute {name!r}")
