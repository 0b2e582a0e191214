"""The comparison of METHOD.md §5: every method's frozen embeddings of one cache, probed and used for retrieval.

Methods (keys used in every table): ``random`` (the untrained model of each seed), ``mae_ecg``, ``global``,
``local``, ``ptacl``, ``supervised`` (the reference trained on the phenotypes themselves) and ``cmr_ptacl``
(the PTACL run's *CMR* embedding: the upper reference, what the image itself tells a linear probe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ptacl_core.evaluation.embedding_maps import embedding_map
from ptacl_core.evaluation.embeddings import cache_embeddings
from ptacl_core.evaluation.endpoints import EndpointPlan
from ptacl_core.evaluation.heart_rate import beyond_heart_rate, ecg_heart_rate
from ptacl_core.evaluation.inputs import EvaluationInputs
from ptacl_core.evaluation.references import reference_features
from ptacl_core.evaluation.retrieval import KS, score_retrieval, topk, zscore_phenotypes
from ptacl_core.evaluation.statistics import (
    interval,
    paired_difference,
    query_resamples,
    seed_sd,
)
from ptacl_core.evaluation.tables import ECG_TO_CMR, ECG_TO_ECG
from ptacl_core.methods import CONTRASTIVE, METHODS, REFERENCE_FEATURES, cmr_embedding_rows, label, ordered
from ptacl_core.model.encoders import ModelConfig
from ptacl_core.phenotypes import EVALUATED, PHENOTYPES, PROBED, TEMPORAL_PHENOTYPES
from ptacl_core.preprocessing.cache import Cache, mid_slice
from ptacl_core.training.runs import RunInfo, load_model, random_init_model


@dataclass
class CohortView:
    """What evaluation needs of a cache, in its index order: ids (N,), splits (N,), phenotypes (N, P) in
    ``phenotype_names`` order (the ten volumes, the temporal ones, then the temporal ones beyond heart rate,
    ``heart_rate.beyond_heart_rate``; NaN where a cohort lacks them),
    conditions (N,) (or "unknown")."""

    cache: Cache
    subject_ids: np.ndarray
    splits: np.ndarray
    phenotypes: np.ndarray
    conditions: np.ndarray
    phenotype_names: tuple[str, ...] = PROBED

    @property
    def volumes(self) -> np.ndarray:
        """(N, 10) the volume phenotypes (``PHENOTYPES``): retrieval's relevance space."""
        return self.phenotypes[:, [self.phenotype_names.index(name) for name in PHENOTYPES]]

    def column(self, name: str) -> np.ndarray:
        return self.phenotypes[:, self.phenotype_names.index(name)]

    @classmethod
    def of(cls, cache: Cache) -> CohortView:
        index = cache.index
        conditions = index["condition"].astype(str).to_numpy() if "condition" in index else np.full(len(index), "unknown")
        splits = index.split.astype(str).to_numpy()
        measured = cache.phenotypes(EVALUATED)
        temporal = measured[:, [EVALUATED.index(name) for name in TEMPORAL_PHENOTYPES]]
        derived = beyond_heart_rate(temporal, ecg_heart_rate(cache), splits == "train")
        return cls(cache, index.subject_id.astype(str).to_numpy(), splits, np.hstack([measured, derived]),
                   conditions, PROBED)


def collect_embeddings(cache: Cache, runs: list[RunInfo], random_config: ModelConfig, random_seeds: list[int],
                       store: Path | str | None = None, device: str = "cpu", progress: bool = True) -> tuple[dict, dict]:
    """ECG embeddings per (method, seed) -> (N, D), plus the CMR embeddings of the PTACL runs as ("cmr_ptacl", seed)
    (``methods.cmr_embedding_rows``), and the models per (method, seed) (for projections and figures). Random init: ``random_config`` built
    with each of ``random_seeds``, i.e. the first state of the trained runs with those seeds."""
    embeddings, models = {}, {}
    jobs = [("random", seed, None) for seed in random_seeds] + [(run.method, run.seed, run.folder) for run in runs
                                                                  if "ecg" in METHODS[run.method].trains]
    for method, seed, folder in tqdm(jobs, desc="embeddings", disable=not progress):
        model = random_init_model(random_config, seed) if folder is None else load_model(folder)[0]
        models[(method, seed)] = model
        embeddings[(method, seed)] = cache_embeddings(model, cache, "ecg", store, device=device)
        for row in cmr_embedding_rows(method):  # cmr_ptacl: the PTACL run's CMR embedding
            embeddings[(row, seed)] = cache_embeddings(model, cache, "cmr", store, device=device)
    return embeddings, models


@torch.no_grad()
def project(model, pooled: np.ndarray, modality: str) -> np.ndarray:
    """The contrastive projection (``ecg_head`` / ``cmr_head``) of pooled embeddings: (N, D) -> (N, d)."""
    head = model.ecg_head if modality == "ecg" else model.cmr_head
    return head.eval()(torch.from_numpy(np.asarray(pooled, dtype=np.float32))).numpy()


# --- retrieval over the methods -------------------------------------------------------------------------------

def contrastive_projections(view: CohortView, models: dict, embeddings: dict, store: Path | str | None = None,
                            device: str = "cpu") -> dict:
    """(method, seed) -> ((N, d) projected ECG, (N, d) projected CMR) for the contrastive methods: the shared
    space ECG->CMR retrieval searches in."""
    projections = {}
    for (method, seed), model in models.items():
        if method in CONTRASTIVE:
            cmr_pooled = cache_embeddings(model, view.cache, "cmr", store, device=device)
            projections[(method, seed)] = (project(model, embeddings[(method, seed)], "ecg"), project(model, cmr_pooled, "cmr"))
    return projections


def retrieval_per_query(view: CohortView, embeddings: dict, projections: dict, split: str = "test", seed: int = 0) -> dict:
    """(method, seed, direction) -> RetrievalScores over the ``split`` subjects (queries and gallery).

    ECG->ECG uses the pooled pre-projection embeddings, leaving each query's own ECG out. ECG->CMR uses the
    contrastive projections (``contrastive_projections``); its similar-patient metrics leave the query's own
    CMR out, its recall@k (identification) keeps it in. Phenotypes are z-scored with training statistics.
    """
    rows = np.flatnonzero(view.splits == split)
    train = np.flatnonzero(view.splits == "train")
    z = zscore_phenotypes(view.volumes[rows], view.volumes[train])
    lvef = view.column("LVEF_pct")[rows]
    usable = np.isfinite(lvef)
    rows, z, lvef = rows[usable], z[usable], lvef[usable]
    own = np.arange(len(rows))
    ks = tuple(k for k in KS if k < len(rows))  # a small split (e.g. a smoke run) offers fewer candidates
    if not ks:
        raise ValueError(f"retrieval needs at least 2 {split} subjects with a known LVEF, got {len(rows)}")
    kmax = max(ks)
    results = {}
    for (method, run_seed), x in embeddings.items():
        if METHODS[method].cmr_embedding_of or method in REFERENCE_FEATURES:  # not ECG encoders: probed, not searched
            continue
        retrieved, _ = topk(x[rows], x[rows], kmax, exclude=own)
        results[(method, run_seed, ECG_TO_ECG)] = score_retrieval(retrieved, z, z, lvef, lvef, exclude=own, ks=ks, seed=seed)
        if (method, run_seed) in projections:
            ecg_projected, cmr_projected = projections[(method, run_seed)]
            query, gallery = ecg_projected[rows], cmr_projected[rows]
            similar, _ = topk(query, gallery, kmax, exclude=own)
            identified, _ = topk(query, gallery, kmax)
            results[(method, run_seed, ECG_TO_CMR)] = score_retrieval(similar, z, z, lvef, lvef, exclude=own, ks=ks, seed=seed,
                                                                     identification=(identified, own))
    return results


def summarise_retrieval(per_query: dict, n_bootstrap: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-seed and over-seed tables (mean over queries, bootstrap 95% interval over queries; the over-seed
    interval is that of the seed mean, on resamples shared by every method), and the resampled seed means
    per (method, direction, metric) for paired differences."""
    n_queries = len(next(iter(per_query.values())).per_query["zdist_random"]) if per_query else 0
    indices = query_resamples(n_queries, n_bootstrap, seed)
    per_seed_rows, resampled = [], {}
    for (method, run_seed, direction), scores in per_query.items():
        for metric, values in scores.per_query.items():
            samples = values[indices].mean(1)
            resampled.setdefault((method, direction, metric), []).append(samples)
            low, high = interval(samples)
            per_seed_rows.append({"method": method, "seed": run_seed, "direction": direction, "metric": metric,
                                  "value": float(values.mean()), "low": low, "high": high, "n_queries": len(values)})
    per_seed = pd.DataFrame(per_seed_rows)
    summary_rows, seed_means = [], {}
    for (method, direction, metric), group in per_seed.groupby(["method", "direction", "metric"], sort=False):
        samples = np.mean(resampled[(method, direction, metric)], axis=0)
        seed_means[(method, direction, metric)] = samples
        low, high = interval(samples)
        summary_rows.append({"method": method, "direction": direction, "metric": metric, "n_seeds": len(group),
                             "value": float(group.value.mean()),
                             "seed_sd": seed_sd(group.value),
                             "low": low, "high": high, "n_queries": int(group.n_queries.iloc[0])})
    return per_seed, pd.DataFrame(summary_rows), seed_means


def retrieval_difference(seed_means: dict, summary: pd.DataFrame, method: str, baseline: str, direction: str, metric: str,
                         per_seed: pd.DataFrame | None = None) -> dict:
    """Seed-mean ``metric`` of ``method`` minus ``baseline`` with its paired bootstrap 95% interval and, given
    the per-seed table, the standard error of the difference over seeds."""
    value = summary.set_index(["method", "direction", "metric"]).value
    if per_seed is not None:
        rows = per_seed[(per_seed.direction == direction) & (per_seed.metric == metric)]
        seeds_a, seeds_b = rows[rows.method == method].value.to_numpy(), rows[rows.method == baseline].value.to_numpy()
    else:  # seed spread unknown: the seed means stand for one value each
        seeds_a, seeds_b = [value[(method, direction, metric)]], [value[(baseline, direction, metric)]]
    difference = paired_difference(seed_means[(method, direction, metric)], seed_means[(baseline, direction, metric)],
                                   seeds_a, seeds_b)
    return {"method": method, "baseline": baseline, "direction": direction, "metric": metric, **difference}


# --- one object for notebooks 03-05 ----------------------------------------------------------------------------

@dataclass
class Comparison:
    """The cache, the finished runs and every method's embeddings, resolved the same way by notebooks 03-05."""

    view: CohortView
    runs: list[RunInfo]
    notes: list[str]
    embeddings: dict
    models: dict
    preset: str
    store: Path
    plan: EndpointPlan = field(default_factory=EndpointPlan.load)  # the headline comparison (configs/endpoints.json)

    @classmethod
    def load(cls, cohort_dir=None, cache_dir=None, preset: str = "tiny", runs_dir=None, embeddings_dir=None, fast: bool = False,
             random_seeds: int | None = None, device: str = "cpu", progress: bool = True, references: bool = True) -> Comparison:
        """``of`` the folders ``EvaluationInputs.resolve`` makes of these parameters (its defaults: the synthetic
        cohort, the cache notebook 01 built for ``preset``, ``runs/``, ``outputs/embeddings``)."""
        inputs = EvaluationInputs.resolve(cohort_dir, cache_dir, preset, runs_dir, embeddings_dir, fast=fast)
        return cls.of(inputs, random_seeds, device, progress, references)

    @classmethod
    def of(cls, inputs: EvaluationInputs, random_seeds: int | None = None, device: str = "cpu", progress: bool = True,
           references: bool = True, plan: EndpointPlan | None = None) -> Comparison:
        """The cache and the finished runs of ``inputs`` (those trained on another cache left out, with a note).
        random_seeds: how many random-init models (default: one per seed of the headline method's runs);
        references: add the reference rows (condition label, hand-crafted ECG measurements, generator latents
        where known); plan: the endpoint plan whose headline method the single-run figures show (default
        ``configs/endpoints.json``)."""
        plan = plan or EndpointPlan.load()
        cache = inputs.open_cache()
        runs, notes = inputs.runs(cache)
        if not runs:
            raise FileNotFoundError(f"no finished {inputs.preset!r} runs for {inputs.cache_dir} in {inputs.runs_dir}"
                                    f"{' (fast)' if inputs.fast else ''}; run notebook 02 first"
                                    + ("; " + "; ".join(notes) if notes else ""))
        # random init = the first state of the trained runs: their architecture, their seeds
        reference = [r for r in runs if r.method == plan.method] or runs
        seeds = sorted({r.seed for r in reference})[:random_seeds]
        store = inputs.embeddings_dir
        embeddings, models = collect_embeddings(cache, runs, reference[0].model_config, seeds, store, device, progress)
        if references:
            embeddings.update(reference_features(cache, store, progress))
        return cls(CohortView.of(cache), runs, notes, embeddings, models, inputs.preset, store, plan)

    def headline(self) -> tuple[str, int]:
        """The (method, seed) the single-run figures show: the headline method's lowest seed (``plan.method``),
        else the first trained method's."""
        trained = sorted(k for k in self.embeddings if METHODS.get(k[0]) is not None and METHODS[k[0]].trainable)
        preferred = [k for k in trained if k[0] == self.plan.method] or trained
        return preferred[0]

    def first_run(self, method: str) -> RunInfo | None:
        """The lowest-seed finished run of ``method`` (what the single-run figures show), or None."""
        return next((r for r in sorted(self.runs, key=lambda r: r.seed) if r.method == method), None)

    def retrieval_panel_queries(self, method: str, seed: int, n_queries: int = 3, split: str = "test") -> list[dict]:
        """ECG->ECG retrieval examples for ``plotting.comparison.plot_retrieval_panel``: one query per condition, in the
        split's order, each with its ECG, its own mid-slice ED frame, ``condition`` and ``lvef`` (%), and its top-3
        retrieved patients' (frame, title, condition, lvef)."""
        view, cache = self.view, self.view.cache
        index = cache.index
        rows = np.flatnonzero(view.splits == split)
        embedding = self.embeddings[(method, seed)][rows]
        retrieved, _ = topk(embedding, embedding, 3, exclude=np.arange(len(rows)))

        def mid_ed_frame(position: int) -> np.ndarray:
            cine = np.asarray(cache.cmr[int(index.row.iloc[position])], dtype=np.float32)
            return mid_slice(cine)[int(index.ed_frame.iloc[position])]

        def describe(position: int) -> str:
            return (f"LVEF {view.column('LVEF_pct')[position]:.0f} %, LVEDV {view.column('LVEDV_mL')[position]:.0f} mL\n"
                    f"{view.conditions[position].replace('_', ' ')}")

        def facts(position: int) -> dict:
            return {"condition": str(view.conditions[position]), "lvef": float(view.column("LVEF_pct")[position])}

        chosen, seen = [], set()  # one query per condition, in a fixed order, so the panel shows different hearts
        for q, position in enumerate(rows):
            if view.conditions[position] not in seen:
                chosen.append(q)
                seen.add(view.conditions[position])
        queries = []
        for q in chosen[:n_queries]:
            position = rows[q]
            queries.append({
                "ecg": np.asarray(cache.ecg[int(index.row.iloc[position])], dtype=np.float32),
                "title": f"query ECG (lead II): {describe(position)}".replace("\n", ", "),
                "own_frame": mid_ed_frame(position),
                **facts(position),
                # captions name the rank and the heart, not the raw cosine (pooled embeddings' cosines all sit near 1)
                "retrieved": [{"frame": mid_ed_frame(rows[r]), "title": f"#{rank + 1}: {describe(rows[r])}", **facts(rows[r])}
                              for rank, r in enumerate(retrieved[q])],
            })
        return queries

    def embedding_maps(self, methods=None, how: str = "tsne") -> dict[str, np.ndarray]:
        """2-D maps (N, 2) of the lowest seed's standardised ECG embedding per method (t-SNE or PCA); methods
        default: random init, the headline baseline and the headline method (``plan``)."""
        methods = methods or ("random", self.plan.baseline, self.plan.method)
        coordinates = {}
        for method in methods:
            seeds = sorted(seed for m, seed in self.embeddings if m == method)
            if seeds:
                coordinates[method] = embedding_map(self.embeddings[(method, seeds[0])], how)
        return coordinates

    def seeds(self) -> pd.DataFrame:
        """Methods and the seeds evaluated for each."""
        seeds: dict[str, list[int]] = {}
        for method, seed in self.embeddings:
            seeds.setdefault(method, []).append(seed)
        return pd.DataFrame([{"method": m, "label": label(m), "seeds": sorted(seeds[m])} for m in ordered(seeds)])


RETRIEVAL_DIFFERENCE_METRICS = ("precision@1", "precision@5", "precision@10", "zdist@10", "lvef_error@10",
                                "recall@1", "recall@5", "recall@10")


def retrieval_differences(per_seed: pd.DataFrame, summary: pd.DataFrame, seed_means: dict, method: str = "ptacl",
                          metrics=RETRIEVAL_DIFFERENCE_METRICS) -> pd.DataFrame:
    """``method`` against every other method, per direction and metric both were scored on."""
    rows = [retrieval_difference(seed_means, summary, method, other, direction, metric, per_seed)
            for direction in summary.direction.unique()
            for other in ordered(summary[summary.direction == direction].method) if other != method
            for metric in metrics if (method, direction, metric) in seed_means and (other, direction, metric) in seed_means]
    return pd.DataFrame(rows, columns=["method", "baseline", "direction", "metric", "difference", "low", "high", "seed_se", "seed_df"])
