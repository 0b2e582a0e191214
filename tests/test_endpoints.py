"""Pre-registered endpoints: the plan file, family differences over subjects and seeds, Holm, verdicts."""

import json

import numpy as np
import pandas as pd
import pytest

from ptacl_core.evaluation.endpoints import (
    Endpoint,
    EndpointPlan,
    endpoint_rows,
    finalize,
    probe_endpoint_samples,
    retrieval_endpoint_samples,
)
from ptacl_core.evaluation.probing import ProbeConfig, probe_methods
from ptacl_core.evaluation.retrieval import RetrievalScores
from ptacl_core.phenotypes import PHENOTYPES

FAMILY = ("LVEF_pct", "LVEDV_mL", "LVM_g")


def _results(gain: float, seeds: int = 3, n: int = 300):
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(n, 3))
    phenotypes = np.full((n, len(PHENOTYPES)), np.nan)
    for j, name in enumerate(FAMILY):
        phenotypes[:, PHENOTYPES.index(name)] = latent[:, j] + rng.normal(0, 0.7, n)
    splits = np.array(["train"] * 200 + ["test"] * 100)
    embeddings = {}
    for seed in range(seeds):
        noise = np.random.default_rng(seed + 10)
        embeddings[("ptacl", seed)] = latent + noise.normal(0, 1.0 - gain, latent.shape)
        embeddings[("global", seed)] = latent + noise.normal(0, 1.0, latent.shape)
    return probe_methods(embeddings, phenotypes, splits, np.arange(n).astype(str),
                         ProbeConfig(fractions=(1.0,), n_bootstrap=400, phenotypes=FAMILY))


PLAN = EndpointPlan(endpoints=(Endpoint("family R²", "primary", "probe", "r2", FAMILY),
                               Endpoint("ECG→ECG precision@10", "secondary", "retrieval", "precision@10", direction="ECG→ECG")))


def test_family_samples_are_the_mean_over_phenotypes():
    results = _results(0.5)
    points, samples = probe_endpoint_samples(results, PLAN.endpoints[0], "ptacl", 1.0)
    rows = results.per_seed[results.per_seed.method == "ptacl"]
    assert points == pytest.approx([rows[rows.seed == s].r2.mean() for s in range(3)])
    expected = np.mean([results.bootstrap[("ptacl", 1, 1.0, p)]["r2"] for p in FAMILY], axis=0)
    assert samples[1] == pytest.approx(expected)
    assert probe_endpoint_samples(results, Endpoint("x", "primary", "probe", "r2", ("RVEF_pct",)), "ptacl", 1.0) is None


def test_a_real_gain_is_detected_and_no_gain_is_not():
    better = finalize(endpoint_rows(PLAN, "probe", lambda e, m: probe_endpoint_samples(_results(0.6), e, m, 1.0), "c"), PLAN)
    assert better.verdict.iloc[0] == "better" and better.p_adjusted.iloc[0] < 0.05 and better.difference.iloc[0] > 0
    assert better.mdd.iloc[0] > 0 and better.test_sd.iloc[0] > 0
    same = finalize(endpoint_rows(PLAN, "probe", lambda e, m: probe_endpoint_samples(_results(0.0), e, m, 1.0), "c"), PLAN)
    assert same.verdict.iloc[0] == "indistinguishable" and same.ci_low.iloc[0] < same.difference.iloc[0] < same.ci_high.iloc[0]


def test_retrieval_samples_use_the_shared_query_resamples():
    rng = np.random.default_rng(1)
    per_query = {(m, s, "ECG→ECG"): RetrievalScores({"precision@10": rng.uniform(0, 1, 50) + (0.3 if m == "ptacl" else 0)})
                 for m in ("ptacl", "global") for s in range(2)}
    points, samples = retrieval_endpoint_samples(per_query, PLAN.endpoints[1], "ptacl", 100)
    assert samples.shape == (2, 100) and points[0] == pytest.approx(per_query[("ptacl", 0, "ECG→ECG")].per_query["precision@10"].mean())
    rows = finalize(endpoint_rows(PLAN, "retrieval", lambda e, m: retrieval_endpoint_samples(per_query, e, m, 100), "c"), PLAN)
    assert rows.endpoint.tolist() == ["ECG→ECG precision@10"] and rows.difference.iloc[0] > 0.2


def test_holm_is_applied_per_cohort_and_the_criterion_is_named():
    rows = pd.DataFrame({"cohort": ["a", "a", "b"], "endpoint": ["family R²", "ECG→ECG precision@10", "family R²"],
                         "role": ["primary", "secondary", "primary"], "comparison": "ptacl − global", "method": "ptacl",
                         "baseline": "global", "metric": "r2", "difference": [0.05, 0.04, 0.05], "ci_low": [0.01, 0.01, 0.01],
                         "ci_high": [0.09, 0.08, 0.09], "p": [0.03, 0.02, 0.03], "se": 0.02, "test_sd": 0.01, "mdd": 0.056,
                         "seed_se": np.nan, "seed_df": np.nan, "n_seeds": 1, "alpha": 0.05, "power": 0.8})
    final = finalize(rows, PLAN)
    assert final.p_adjusted.tolist() == pytest.approx([0.04, 0.04, 0.03])
    assert final.verdict.tolist() == ["better", "better", "better"] and "Holm-adjusted p" in final.criterion.iloc[0]


def test_the_shipped_plan_and_bad_plans(tmp_path):
    plan = EndpointPlan.load()
    assert [e.role for e in plan.endpoints].count("primary") == 1 and plan.method == "ptacl" and plan.baseline == "global"
    assert plan.endpoints[0].phenotypes == tuple(PHENOTYPES)
    bad = tmp_path / "e.json"
    bad.write_text(json.dumps({"endpoints": [{"name": "x", "role": "secondary", "kind": "probe", "metric": "r2", "phenotypes": ["LVEF_pct"]}]}))
    with pytest.raises(ValueError, match="exactly one endpoint must be primary"):
        EndpointPlan.load(bad)
    bad.write_text(json.dumps({"endpoints": [{"name": "x", "role": "primary", "kind": "survey", "metric": "r2"}]}))
    with pytest.raises(ValueError, match="e.json: not a valid endpoint list"):
        EndpointPlan.load(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="e.json"):
        EndpointPlan.load(bad)


def test_a_missing_endpoint_stays_in_the_list():
    plan = EndpointPlan(endpoints=(Endpoint("family R²", "primary", "probe", "r2", FAMILY),
                                   Endpoint("RV R²", "secondary", "probe", "r2", ("RVEF_pct",))))
    results = _results(0.6)
    rows = finalize(endpoint_rows(plan, "probe", lambda e, m: probe_endpoint_samples(results, e, m, 1.0), "c"), plan)
    assert rows.endpoint.tolist() == ["family R²", "RV R²"] and rows.verdict.tolist()[1] == "not computed"
    assert rows.p_adjusted.iloc[0] == pytest.approx(rows.p.iloc[0])  # the family of computed endpoints


@pytest.mark.parametrize("endpoint, message", [
    (dict(name="x", role="tertiary", kind="probe", metric="r2", phenotypes=("LVEF_pct",)), "role must be"),
    (dict(name="x", role="primary", kind="probe", metric="r2"), "needs its phenotypes"),
    (dict(name="x", role="primary", kind="probe", metric="r2", phenotypes=("LVEF",)), "unknown phenotype"),
    (dict(name="x", role="primary", kind="probe", metric="rsquared", phenotypes=("LVEF_pct",)), "probe metric must be"),
    (dict(name="x", role="primary", kind="retrieval", metric="precision@10"), "direction must be"),
    (dict(name="x", role="primary", kind="retrieval", metric="precision", direction="ECG→ECG"), "unknown retrieval metric"),
])
def test_bad_endpoints_are_refused(endpoint, message):
    with pytest.raises(ValueError, match=message):
        Endpoint(**endpoint)


def test_plan_numbers_are_checked(tmp_path):
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"alpha": 1.5, "endpoints": [{"name": "x", "role": "primary", "kind": "probe", "metric": "r2",
                                                             "phenotypes": ["LVEF_pct"]}]}))
    with pytest.raises(ValueError, match="alpha and power"):
        EndpointPlan.load(path)


def test_the_twin_contrast_tests_the_difference_of_differences(tmp_path):
    from ptacl_core.evaluation.endpoints import contrast_rows, load_samples, save_samples

    for name, gain in (("cohort", 0.6), ("same", 0.6), ("null", 0.0)):
        folder = tmp_path / name
        folder.mkdir()
        results = _results(gain)
        save_samples(folder / "endpoint_samples_probe.npz", PLAN, "probe", lambda e, m, r=results: probe_endpoint_samples(r, e, m, 1.0))
    cohort, same, null = (load_samples(tmp_path / n) for n in ("cohort", "same", "null"))
    assert set(cohort) == {("family R²", "ptacl"), ("family R²", "global")}
    against_null = finalize(contrast_rows(PLAN, cohort, null, "physiological", "null twin"), PLAN)
    assert against_null.verdict.iloc[0] == "better" and against_null.cohort.iloc[0] == "physiological − null twin"
    against_same = finalize(contrast_rows(PLAN, cohort, same, "physiological", "twin"), PLAN)
    assert against_same.difference.iloc[0] == pytest.approx(0.0) and against_same.verdict.iloc[0] == "indistinguishable"
    assert against_same.verdict.iloc[1] == "not computed"  # no retrieval samples saved


def test_variants_are_compared_with_the_baseline_as_their_own_holm_families(tmp_path):
    results = _results(0.6)
    plan = EndpointPlan(endpoints=PLAN.endpoints[:1], variants=("ptacl_cross", "ptacl_sham"))

    def samples_of(endpoint, method):  # ptacl_cross scored as a copy of global (no gain); ptacl_sham never trained
        if method == "ptacl_sham":
            return None
        return probe_endpoint_samples(results, endpoint, "global" if method == "ptacl_cross" else method, 1.0)

    rows = finalize(endpoint_rows(plan, "probe", samples_of, "c"), plan)
    assert rows.comparison.tolist() == ["ptacl − global", "ptacl_cross − global"]  # the untrained sham left out
    assert rows.verdict.tolist()[0] == "better" and rows.difference.iloc[1] == pytest.approx(0.0)
    assert rows.p_adjusted.tolist()[0] == pytest.approx(rows.p.iloc[0])  # one endpoint per family: no Holm inflation
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"variants": ["ptacl_diag"], "endpoints": [
        {"name": "x", "role": "primary", "kind": "probe", "metric": "r2", "phenotypes": ["LVEF_pct"]}]}))
    with pytest.raises(ValueError, match="unknown method"):
        EndpointPlan.load(path)
