"""Training: ``config`` (TrainConfig) -> ``objective`` (what each method optimises) -> ``loop`` (train, resume,
DDP) -> ``runs`` (the run folder: names, checkpoints, metrics, finding finished runs).

Importing ``ptacl_core.training.runs`` (as evaluation and prediction do) does not import the loop.
"""

from ptacl_core.training.config import LossConfig, OptimConfig, TrainConfig, load_config
from ptacl_core.training.runs import find_runs, load_model, run_name

__all__ = ["LossConfig", "OptimConfig", "TrainConfig", "find_runs", "load_config", "load_model", "run_name", "train"]


def __getattr__(name: str):
    if name == "train":  # the loop (DataLoader, DDP) only when asked for
        from ptacl_core.training.loop import train

        return train
    raise AttributeError(f"module 'ptacl_core.training' has no attribute {name!r}")
