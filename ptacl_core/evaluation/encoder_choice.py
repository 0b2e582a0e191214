"""The ECG encoder chosen on validation, both reported on test (``--profile encoders``, notebook 08; METHOD.md §3):
the ViT (preset ``tiny``) and the 1-D ResNet (``tiny_resnet``) train the same methods on the same cache, each
preset's runs are evaluated by notebooks 03-04 in its own folder (``figures/encoders/<preset>/``), and the
encoder is chosen by the headline method's primary endpoint on the *validation* split: the same ridge probe,
fitted on train and scored on val (``validation_probe``). Test is read only to report both encoders, never to choose.

    choice table (``encoder_table``), one row per (preset, method, endpoint):
      split        "val" (the choice: the primary endpoint only, no interval) or "test" (every endpoint)
      value, ci_low, ci_high, n_seeds   seed mean; on test its two-level 95% interval (subjects and seeds)
      chosen       the preset the validation choice picked (the same on every row of that preset)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.evaluation import tables as layout
from ptacl_core.evaluation.endpoints import EndpointPlan, load_samples, method_values
from ptacl_core.evaluation.probing import ProbeConfig, probe_methods
from ptacl_core.methods import METHODS
from ptacl_core.model.presets import shared_preprocessing

COLUMNS = ["preset", "method", "endpoint", "split", "value", "ci_low", "ci_high", "n_seeds", "chosen"]
MIN_VALIDATION = 3  # validation subjects a probe can be scored on (a cohort without a val split has no choice)
VALIDATION_BOOTSTRAP = 100  # the choice uses the point estimate; a few resamples keep the probe's own checks


def primary(plan: EndpointPlan):
    """The plan's primary endpoint (a probe endpoint: the choice is made with a probe on the validation split)."""
    endpoint = next(e for e in plan.endpoints if e.role == "primary")
    if endpoint.kind != "probe":
        raise ValueError(f"the primary endpoint {endpoint.name!r} is not a probe endpoint: no validation probe for it")
    return endpoint


def validation_probe(embeddings: dict, phenotypes: np.ndarray, splits: np.ndarray, subject_ids: np.ndarray,
                     names: tuple[str, ...], plan: EndpointPlan, conditions: np.ndarray | None = None) -> pd.DataFrame:
    """Per (method, seed, phenotype of the primary endpoint) of the trained methods: the ridge probe of notebook 03
    fitted on the training split and scored on the validation split (the test split takes no part), at the plan's
    label fraction. Columns as ``probing.ProbeResults.per_seed``; empty when the cohort has fewer than
    ``MIN_VALIDATION`` validation subjects or the primary endpoint is no probe endpoint (then no choice is made)."""
    endpoint = next(e for e in plan.endpoints if e.role == "primary")
    if endpoint.kind != "probe" or (np.asarray(splits) == "val").sum() < MIN_VALIDATION:
        return pd.DataFrame(columns=["method", "seed", "fraction", "phenotype", "r2", "split"])  # no choice possible
    trained = {key: x for key, x in embeddings.items() if key[0] in METHODS and METHODS[key[0]].trainable}
    if not trained:
        raise ValueError("no trained method among the embeddings: nothing to choose an encoder with")
    relabelled = np.where(splits == "val", "test", np.where(splits == "test", "held out", splits))  # val in test's place
    config = ProbeConfig(fractions=(plan.fraction,), n_bootstrap=VALIDATION_BOOTSTRAP, phenotypes=endpoint.phenotypes)
    per_seed = probe_methods(trained, phenotypes, relabelled, subject_ids, config, names=names, conditions=conditions).per_seed
    return per_seed.assign(split="val")


def validation_rows(per_seed: pd.DataFrame, plan: EndpointPlan, preset: str) -> list[dict]:
    """The primary endpoint on validation per method: the family mean per seed, then the mean over seeds (seeds
    lacking a phenotype of the family are left out)."""
    endpoint = primary(plan)
    rows = []
    for method, group in per_seed[per_seed.phenotype.isin(endpoint.phenotypes)].groupby("method", sort=False):
        complete = [seed for seed, g in group.groupby("seed") if set(g.phenotype) == set(endpoint.phenotypes)]
        if not complete:
            continue
        family = group[group.seed.isin(complete)].groupby("seed")[endpoint.metric].mean()
        rows.append({"preset": preset, "method": method, "endpoint": endpoint.name, "split": "val",
                     "value": float(family.mean()), "ci_low": np.nan, "ci_high": np.nan, "n_seeds": len(family)})
    return rows


def scored_on_test(samples: dict, plan: EndpointPlan, preset: str) -> list[dict]:
    """Every endpoint on test per compared method (``endpoints.method_values``: seed mean, two-level interval)."""
    return [{"preset": preset, "split": "test", **v} for v in method_values(samples, plan)]


def encoder_table(tables_dirs: dict[str, Path], plan: EndpointPlan) -> pd.DataFrame:
    """The choice table (module docstring) of the presets in ``tables_dirs`` ({preset: its tables folder}): the
    chosen preset has the best validation value (highest, or lowest where the endpoint says lower is better) of
    the headline method on the primary endpoint. A
    FileNotFoundError names a preset whose notebook 03 has not written its validation probe."""
    shared_preprocessing(tables_dirs)  # a ValueError names an unknown preset, or presets of different caches
    rows = []
    for preset, folder in tables_dirs.items():
        per_seed = layout.read_table(folder, layout.PROBE_VALIDATION)  # names the missing file
        rows += validation_rows(per_seed, plan, preset)
        rows += scored_on_test(load_samples(folder), plan, preset)
    table = pd.DataFrame(rows, columns=COLUMNS)
    scores = table[(table.split == "val") & (table.method == plan.method)].set_index("preset").value
    if scores.empty or not np.isfinite(scores).any():
        raise ValueError(f"no validation score of {plan.method!r} for any of {list(tables_dirs)}: nothing to choose by")
    table["chosen"] = table.preset == (scores.idxmax() if primary(plan).higher_is_better else scores.idxmin())
    return table


def encoder_reading(table: pd.DataFrame, plan: EndpointPlan) -> str:
    """One paragraph: the validation scores that made the choice, then each preset's test values of the headline
    method and the baseline on every endpoint."""
    endpoint = primary(plan)
    chosen = table[table.chosen].preset.iloc[0]
    val = table[(table.split == "val") & (table.method == plan.method)]
    scores = ", ".join(f"{r.preset} {r.value:.3f} ({r.n_seeds} seeds)" for r in val.itertuples())
    sentences = [f"Chosen on validation: {chosen} ({METHODS[plan.method].label} {endpoint.name} on the validation "
                 f"split: {scores})."]
    test = table[table.split == "test"]
    for name in dict.fromkeys(test.endpoint):
        parts = [f"{r.preset} {METHODS[r.method].label} {r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
                 for r in test[test.endpoint == name].itertuples()]
        sentences.append(f"Test {name}: " + "; ".join(parts) + ".")
    return " ".join(sentences)
