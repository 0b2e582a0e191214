"""The report's sentences follow the numbers: swap which method has the informative embedding and the
verdicts swap; an interval across zero is called indistinguishable; the files carry the same reading."""

import json

import numpy as np
import pandas as pd
import pytest

from ptacl_core.evaluation.comparison import retrieval_difference, summarise_retrieval
from ptacl_core.evaluation.probing import ProbeConfig, probe_methods
from ptacl_core.evaluation.report import ResultTables, reading, write_report
from ptacl_core.evaluation.retrieval import score_retrieval, topk, zscore_phenotypes
from ptacl_core.evaluation.statistics import judge, seed_margin
from ptacl_core.phenotypes import PHENOTYPES


def _cohort(n=300, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    phenotypes = np.full((n, len(PHENOTYPES)), np.nan)
    for j, name in enumerate(("LVEF_pct", "LVEDV_mL", "LVM_g")):
        phenotypes[:, PHENOTYPES.index(name)] = (58, 150, 100)[j] + (5, 30, 20)[j] * latent[:, j]
    splits = np.array(["train"] * 200 + ["val"] * 40 + ["test"] * 60)
    informative = np.hstack([latent + rng.normal(0, 0.2, latent.shape), rng.normal(size=(n, 5))])
    noise = rng.normal(size=(n, 8))
    return phenotypes, splits, np.array([f"s{i}" for i in range(n)]), informative, noise


def _tables(ptacl_x, global_x, phenotypes, splits, ids, seeds=1) -> ResultTables:
    rng = np.random.default_rng(9)
    embeddings = {}
    for seed in range(seeds):  # further seeds: the same embedding, slightly perturbed (training randomness)
        jitter = 0.05 * seed
        embeddings[("ptacl", seed)] = ptacl_x + jitter * rng.normal(size=ptacl_x.shape)
        embeddings[("global", seed)] = global_x + jitter * rng.normal(size=global_x.shape)
        embeddings[("random", seed)] = rng.normal(size=global_x.shape)
    config = ProbeConfig(fractions=(0.1, 1.0), n_bootstrap=200, phenotypes=("LVEF_pct", "LVEDV_mL", "LVM_g"))
    results = probe_methods(embeddings, phenotypes, splits, ids, config)
    differences = pd.DataFrame([results.paired_difference("ptacl", b, f, p) for b in ("global", "random")
                                for f in config.fractions for p in config.phenotypes])
    test, train = np.flatnonzero(splits == "test"), np.flatnonzero(splits == "train")
    z = zscore_phenotypes(phenotypes[test][:, [0, 3, 5]], phenotypes[train][:, [0, 3, 5]])
    lvef = phenotypes[test, PHENOTYPES.index("LVEF_pct")]
    own = np.arange(len(test))
    per_query = {}
    for (method, seed), x in embeddings.items():
        retrieved, _ = topk(x[test], x[test], 10, exclude=own)
        per_query[(method, seed, "ECG→ECG")] = score_retrieval(retrieved, z, z, lvef, lvef, exclude=own)
    per_seed, summary, seed_means = summarise_retrieval(per_query, n_bootstrap=200)
    retrieval_differences = pd.DataFrame([retrieval_difference(seed_means, summary, "ptacl", "global", "ECG→ECG", "precision@10",
                                                               per_seed)])
    return ResultTables(results.summary(), differences, summary, retrieval_differences)


@pytest.fixture(scope="module")
def cohort():
    return _cohort()


def _sentence(lines, *words):
    found = [line for line in lines if all(word in line for word in words)]
    assert found, (words, lines)
    return found[0]


def test_swapping_the_informative_embedding_swaps_the_verdicts(cohort):
    phenotypes, splits, ids, informative, noise = cohort
    ptacl_wins = reading(_tables(informative, noise, phenotypes, splits, ids))
    ptacl_loses = reading(_tables(noise, informative, phenotypes, splits, ids))
    assert "PTACL is better than global only on LVEF_pct R²" in _sentence(ptacl_wins, "LVEF_pct (all training labels)")
    assert "PTACL is worse than global only on LVEF_pct R²" in _sentence(ptacl_loses, "LVEF_pct (all training labels)")
    assert "PTACL is better on 3 and worse on 0" in _sentence(ptacl_wins, "Across 3 phenotypes")
    assert "PTACL is better on 0 and worse on 3" in _sentence(ptacl_loses, "Across 3 phenotypes")
    assert "PTACL on 3 of 3" in _sentence(ptacl_wins, "Highest mean R²")
    assert "global only on 3 of 3" in _sentence(ptacl_loses, "Highest mean R²")
    assert "PTACL is better than global only on ECG→ECG precision@10" in _sentence(ptacl_wins, "ECG→ECG precision@10")
    assert "PTACL is worse than global only on ECG→ECG precision@10" in _sentence(ptacl_loses, "ECG→ECG precision@10")
    assert "closer than a random patient" in _sentence(ptacl_wins, "ECG→ECG with PTACL")
    assert "With 10% of the training labels (n = 20): PTACL is better" in _sentence(ptacl_wins, "With 10%")


def test_with_several_seeds_the_seed_margin_is_reported_and_applied(cohort):
    phenotypes, splits, ids, informative, noise = cohort
    tables = _tables(informative, noise, phenotypes, splits, ids, seeds=3)
    differences = tables.probe_differences
    assert np.isfinite(differences.seed_se).all() and (differences.seed_df == 2).all()
    sentence = _sentence(reading(tables), "LVEF_pct (all training labels)")
    assert "seed margin ±" in sentence and "PTACL is better than global only" in sentence
    assert "exceed the seed margin, PTACL is better on 3" in _sentence(reading(tables), "Across 3 phenotypes")
    # one seed: the sentence says the seed spread is unknown instead of claiming a seed criterion
    single = reading(_tables(informative, noise, phenotypes, splits, ids))
    assert "seed spread unknown: one seed" in _sentence(single, "Across 3 phenotypes")


def test_identical_methods_are_called_indistinguishable(cohort):
    phenotypes, splits, ids, informative, _ = cohort
    lines = reading(_tables(informative, informative + 1e-9, phenotypes, splits, ids))
    assert "PTACL and global only are indistinguishable on LVEF_pct R²" in _sentence(lines, "LVEF_pct (all training labels)")


def test_the_numbers_in_the_sentences_are_the_tables(cohort):
    phenotypes, splits, ids, informative, noise = cohort
    tables = _tables(informative, noise, phenotypes, splits, ids)
    r2 = tables.probe.query("fraction == 1.0 and phenotype == 'LVEF_pct'").set_index("method").r2
    sentence = _sentence(reading(tables), "LVEF_pct (all training labels)")
    assert f"R² {r2['ptacl']:.3f} for PTACL vs {r2['global']:.3f} for global only" in sentence
    tables.probe.loc[(tables.probe.method == "ptacl") & (tables.probe.phenotype == "LVEF_pct"), "r2"] = 0.123456
    assert "R² 0.123 for PTACL" in _sentence(reading(tables), "LVEF_pct (all training labels)")


def test_judge():
    assert judge(0.05, 0.01, 0.09) == "better" and judge(-0.05, -0.09, -0.01) == "worse"
    assert judge(0.01, -0.02, 0.04) == "indistinguishable" and judge(0.1, np.nan, np.nan) == "indistinguishable"
    assert judge(-0.5, -0.9, -0.1, higher_is_better=False) == "better"  # e.g. a lower MAE
    # the test-set interval excludes 0, but training seeds disagree: not a claim
    assert judge(0.3, 0.1, 0.5, seed_se=0.2, seed_df=2) == "indistinguishable"  # margin t(0.975, 2) x 0.2 = 0.86
    assert judge(0.3, 0.1, 0.5, seed_se=0.05, seed_df=2) == "better"  # margin 0.22
    assert judge(0.3, 0.1, 0.5, seed_se=0.2) == "better"  # degrees of freedom unknown: the seed criterion cannot apply
    assert seed_margin(0.1, 2) == pytest.approx(0.430265, abs=1e-5) and np.isnan(seed_margin(0.1, np.nan))


def _no_constant(name):
    raise ValueError(f"results.json holds {name}: not strict JSON")


def test_report_files_carry_the_reading_and_tables(cohort, tmp_path):
    phenotypes, splits, ids, informative, noise = cohort
    tables = _tables(informative, noise, phenotypes, splits, ids)
    for name, frame in (("probe_summary", tables.probe), ("probe_differences", tables.probe_differences),
                        ("retrieval_summary", tables.retrieval), ("retrieval_differences", tables.retrieval_differences)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    markdown = write_report(ResultTables.read(tmp_path), tmp_path / "out", {"subjects": 300})
    text = markdown.read_text()
    payload = json.loads((tmp_path / "out/results.json").read_text(), parse_constant=_no_constant)  # strict JSON
    assert payload["reading"] == reading(ResultTables.read(tmp_path))
    assert payload["findings"] and all("kind" in f for f in payload["findings"]) and any("verdict" in f for f in payload["findings"])
    # one training seed: the seed margin is unknown, and strict JSON writes it as null, not NaN
    assert any(f.get("seed_margin", 0) is None for f in payload["findings"])
    assert all(f"- {sentence}" in text for sentence in payload["reading"])
    assert "## Linear probing, all training labels: test R²" in text and "## Retrieval ECG→ECG" in text
    assert "| LVEF_pct |" in text and "PTACL (1 seed)" in text and "LVEDV_mL (mL)" in text
    with pytest.raises(FileNotFoundError, match="run notebooks 03"):
        ResultTables.read(tmp_path / "empty")


def test_endpoint_sentences_follow_the_rows():
    import pandas as pd

    from ptacl_core.evaluation.report import endpoint_sentence

    row = pd.Series({"cohort": "physiological", "endpoint": "volume family R²", "role": "primary", "method": "ptacl",
                     "baseline": "global", "difference": 0.031, "ci_low": 0.01, "ci_high": 0.05, "p": 0.002,
                     "p_adjusted": 0.008, "n_seeds": 5, "verdict": "better", "criterion": "the 95% interval excludes 0",
                     "mdd": 0.02, "test_sd": 0.005, "power": 0.8, "alpha": 0.05})
    sentence = endpoint_sentence(row)
    assert "+0.031 [+0.010, +0.050]" in sentence and "PTACL is better" in sentence and "Holm-adjusted 0.008" in sentence
    contrast = endpoint_sentence(row.copy().replace({"physiological": "physiological − null twin"}))
    assert contrast.startswith("Contrast") and "gain is larger on the physiological cohort" in contrast
    missing = endpoint_sentence(row.copy().replace({"better": "not computed"}))
    assert "not computed" in missing and "+0.031" not in missing


def test_margins_runs_and_what_reproduces_reach_the_report(cohort, tmp_path):
    import pandas as pd

    from ptacl_core.evaluation.report import margin_sentences
    from ptacl_core.evaluation.training_summary import late_share, margin_table

    phenotypes, splits, ids, informative, noise = cohort
    tables = _tables(informative, noise, phenotypes, splits, ids)
    runs = pd.DataFrame({"method": ["ptacl"] * 3 + ["global"] * 3, "seed": [0, 1, 2] * 2, "epochs": 12,
                         "val_loss": 2.0, "val_margin": [0.15, 0.12, 0.18, 0.01, -0.02, 0.00],
                         "val_local_own": 1.0, "val_local_other": 1.1, "late_share": [0.02, 0.05, 0.2, 0.01, 0.03, 0.04],
                         "flattened": [True, True, False, True, True, True], "train_seconds": 20.0, "token_ms": 100.0,
                         "num_bins": 7, "median_bin_ms": 128.0, "narrow_bin_fraction": 0.035, "underfilled_fraction": 0.01,
                         "soft_sigma": 0.056})
    tables.runs, tables.margins = runs, margin_table(runs)
    margins = tables.margins.set_index("method")
    assert margins.loc["ptacl", "margin"] == pytest.approx(0.15) and margins.loc["ptacl", "ci_low"] > 0
    assert margins.loc["global", "ci_low"] < 0 < margins.loc["global", "ci_high"]
    said = margin_sentences(tables.margins, "physiological")
    assert "patient information" in said[0] and "a phase clock" in said[1]
    endpoints = pd.DataFrame([{"cohort": c, "endpoint": "volume family R²", "role": "primary", "comparison": f"{m} − global",
                               "method": m, "baseline": "global", "metric": "r2", "difference": d, "ci_low": d - 0.02,
                               "ci_high": d + 0.02, "p": 0.01, "p_adjusted": 0.01, "se": 0.01, "test_sd": 0.01, "mdd": 0.028,
                               "seed_se": 0.005, "seed_df": 8, "n_seeds": 5, "alpha": 0.05, "power": 0.8,
                               "verdict": v, "criterion": "the 95% interval excludes 0" if v != "indistinguishable" else
                               "the 95% interval includes 0"}
                              for c, m, d, v in (("physiological", "ptacl", 0.04, "better"), ("null twin", "ptacl", 0.0,
                                                 "indistinguishable"), ("physiological", "ptacl_sham", 0.0, "indistinguishable"))])
    markdown = write_report(tables, tmp_path / "out", {"cohort": "physiological"}, endpoints)
    text = markdown.read_text()
    assert "## What reproduces" in text and "**better** +0.040 [+0.020, +0.060], MDD 0.028" in text
    assert "| PTACL sham (another patient's R peaks) − global only | volume family R² | primary | **indistinguishable**" in text
    assert "flattened (the last quarter of epochs brought < 10 % of the validation-loss improvement) in 5 of 6" in text
    assert "3.5 % of training patients have bins narrower than a token; 1.0 % fill fewer than 80 %" in text
    payload = json.loads((tmp_path / "out/results.json").read_text())
    assert payload["minimal_detectable_difference"] == {"physiological": 0.028, "null twin": 0.028}
    assert payload["sham"][0]["method"] == "ptacl_sham" and payload["phase_clock_margins"]["physiological"][0]["n_seeds"] == 3
    tables.heart_rate = pd.DataFrame({"method": ["ptacl", "ptacl", "global", "global"], "seed": [0, 1, 0, 1],
                                      "r2": [0.75, 0.73, 0.52, 0.56]})
    text = write_report(tables, tmp_path / "out2", {"cohort": "null twin"}, endpoints).read_text()
    assert "null twin cohort, heart rate from the ECG embedding" in text and "PTACL 0.740 ± 0.014 (2 seed(s))" in text
    assert late_share([3.0, 2.0, 1.5, 1.2, 1.1]) == pytest.approx(0.1 / 1.9)
    assert np.isnan(late_share([1.0, 1.0, 1.0, 1.0])) and np.isnan(late_share([2.0, 1.0]))
