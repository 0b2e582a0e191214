"""The methods of the comparison (METHOD.md §5), in one registry: name, label, colour, kind, and which
encoders a method trains. Every table, figure, report sentence and the trainer read them from here.

Kinds: ``untrained`` (random init), ``self-supervised`` (no phenotype labels; ``contrastive`` ones also share
an ECG-CMR projection space), ``reference`` (bounds: the supervised ECG model, the CMR embedding).

A trained method names its objective (``objective``: a key of ``ptacl_core.training.objective.OBJECTIVES``, a
string so that this module imports no torch) and, for the contrastive objective, the weights of its two terms:
L = global_weight * L_global + local_weight * loss.lam * L_local (METHOD.md §4; ``loss.lam`` is the run config's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    colour: str
    kind: str  # untrained | self-supervised | contrastive | reference
    trains: tuple[str, ...]  # encoders the trainer updates: "ecg", "cmr"; () when not trained by the kit
    # the objective class that trains it: "contrastive" | "masked_autoencoding" (of the one encoder it trains) |
    # "supervised"; "" when the kit does not train it
    objective: str = ""
    global_weight: float = 0.0  # contrastive: weight of the global (patient-level) term
    local_weight: float = 0.0  # contrastive: weight of the local temporal term, times the config's loss.lam
    local_variant: str = ""  # PTACL variants: the local-loss variant the method trains (METHOD.md §4)
    amplitude_augmentation: bool = True  # the ECG amplitude scaling of ``dataset.Augmentation`` (when augment is on)
    starts_from: tuple[str, ...] = ()  # methods whose runs (same seed) initialise its encoders (``init_from``)
    cmr_embedding_of: str = ""  # a reference row: the *CMR* embedding of this method's runs (probed, not searched)

    @property
    def trainable(self) -> bool:
        """The trainer knows it (``python -m ptacl_core train method=<name>``)."""
        return bool(self.objective)

    @property
    def contrastive(self) -> bool:
        """Has an ECG-CMR projection space (ECG->CMR retrieval searches in it)."""
        return self.kind == "contrastive"

    @property
    def self_supervised(self) -> bool:
        return self.kind in ("self-supervised", "contrastive")


_BOTH = ("ecg", "cmr")
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("random", "random init", "#BBBBBB", "untrained", ()),
    Method("mae_ecg", "ECG MAE", "#332288", "self-supervised", ("ecg",), "masked_autoencoding"),
    Method("mae_cmr", "CMR MAE", "#999933", "self-supervised", ("cmr",), "masked_autoencoding"),
    Method("global", "global only", "#0072B2", "contrastive", _BOTH, "contrastive", global_weight=1.0, local_weight=0.0),
    Method("local", "local only", "#009E73", "contrastive", _BOTH, "contrastive", global_weight=0.0, local_weight=1.0),
    Method("ptacl", "PTACL", "#C44E52", "contrastive", _BOTH, "contrastive", global_weight=1.0, local_weight=1.0),
    Method("ptacl_cross", "PTACL (cross-patient local)", "#CC79A7", "contrastive", _BOTH, "contrastive",
           global_weight=1.0, local_weight=1.0, local_variant="cross_patient"),
    Method("ptacl_sham", "PTACL sham (another patient's R peaks)", "#E69F00", "contrastive", _BOTH, "contrastive",
           global_weight=1.0, local_weight=1.0, local_variant="sham"),
    Method("ptacl_noaug", "PTACL, no ECG amplitude augmentation", "#56B4E9", "contrastive", _BOTH, "contrastive",
           global_weight=1.0, local_weight=1.0, amplitude_augmentation=False),
    Method("ptacl_mae", "PTACL from MAE weights", "#882255", "contrastive", _BOTH, "contrastive",
           global_weight=1.0, local_weight=1.0, starts_from=("mae_ecg", "mae_cmr")),
    Method("supervised", "supervised (reference)", "#000000", "reference", ("ecg",), "supervised"),
    # the PTACL run's *CMR* embedding: what the image itself tells a linear probe (evaluation only)
    Method("cmr_ptacl", "CMR embedding (upper ref.)", "#3D3D3D", "reference", (), cmr_embedding_of="ptacl"),
    # feature rows that bound what is learnable (METHOD.md §5; ``evaluation.references``), probed like embeddings
    Method("condition_label", "condition label only", "#5C5C5C", "reference", ()),
    Method("ecg_measures", "hand-crafted ECG measurements", "#7A7A7A", "reference", ()),
    Method("median_beat", "median beat (PCA, ridge)", "#8C8C8C", "reference", ()),
    Method("generator_latents", "generator latents (ceiling)", "#999999", "reference", ()),
)}
TRAINABLE = tuple(name for name, method in METHODS.items() if method.trainable)
CONTRASTIVE = tuple(name for name, method in METHODS.items() if method.contrastive)
SELF_SUPERVISED = tuple(name for name, method in METHODS.items() if method.self_supervised)
REFERENCE_FEATURES = ("condition_label", "ecg_measures", "median_beat", "generator_latents")  # not encoders: probed, not searched
OTHER_COLOUR = "#DDCC77"


def label(name: str) -> str:
    return METHODS[name].label if name in METHODS else name


def colour(name: str) -> str:
    return METHODS[name].colour if name in METHODS else OTHER_COLOUR


def ordered(names: Iterable[str]) -> list[str]:
    """Unique names in registry order, unknown names last (alphabetically)."""
    order = list(METHODS)
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda m: (order.index(m) if m in order else len(order), m))


def check_trainable(name: str) -> None:
    if name not in TRAINABLE:
        raise ValueError(f"method must be one of {TRAINABLE}, got {name!r}")


def cmr_embedding_rows(method: str) -> tuple[str, ...]:
    """The reference rows that hold the CMR embedding of ``method``'s runs (``cmr_ptacl`` for ``ptacl``)."""
    return tuple(name for name, row in METHODS.items() if row.cmr_embedding_of == method)
