"""The ECG encoder chosen on validation: the validation probe against sklearn fitted by hand, the choice made on
val only (test values that disagree do not move it), both presets reported, the profile's plan, bad input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ptacl_core import paths
from ptacl_core.evaluation import tables as layout
from ptacl_core.evaluation.encoder_choice import encoder_reading, encoder_table, validation_probe
from ptacl_core.evaluation.endpoints import Endpoint, EndpointPlan, save_samples
from ptacl_core.evaluation.probing import RIDGE_ALPHAS
from ptacl_core.tools.runner import PROFILES, encoder_steps, list_notebooks, parse_presets

FAMILY = ("LVEF_pct", "LVEDV_mL")
PLAN = EndpointPlan(endpoints=(Endpoint("family R²", "primary", "probe", "r2", FAMILY),
                               Endpoint("other R²", "secondary", "probe", "r2", ("LVM_g",))))
NAMES = (*FAMILY, "LVM_g")


def _cohort(n=240, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    phenotypes = latent + rng.normal(0, 0.5, size=(n, 3))
    splits = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    return rng, latent, phenotypes, splits


def test_the_validation_probe_is_a_ridge_fitted_on_train_and_scored_on_val():
    rng, latent, phenotypes, splits = _cohort()
    embeddings = {("ptacl", 0): latent + rng.normal(0, 0.6, latent.shape), ("global", 1): rng.normal(size=(240, 4)),
                  ("median_beat", 0): latent}  # a reference row: not a trained method, not probed for the choice
    per_seed = validation_probe(embeddings, phenotypes, splits, np.arange(240).astype(str), NAMES, PLAN)
    assert set(per_seed.method) == {"ptacl", "global"} and set(per_seed.phenotype) == set(FAMILY)
    assert (per_seed.split == "val").all() and (per_seed.n_test == 60).all() and (per_seed.n_train == 120).all()
    train, val = splits == "train", splits == "val"
    for row in per_seed.itertuples():
        x, y = embeddings[(row.method, row.seed)], phenotypes[:, NAMES.index(row.phenotype)]
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.asarray(RIDGE_ALPHAS))).fit(x[train], y[train])
        assert row.r2 == pytest.approx(r2_score(y[val], model.predict(x[val])), abs=1e-6)


def test_a_plan_whose_primary_endpoint_is_no_probe_gives_no_choice():
    rng, latent, phenotypes, splits = _cohort()
    plan = EndpointPlan(endpoints=(Endpoint("p@10", "primary", "retrieval", "precision@10", direction="ECG→ECG"),))
    assert validation_probe({("ptacl", 0): latent}, phenotypes, splits, np.arange(240).astype(str), NAMES, plan).empty


def test_a_lower_is_better_primary_endpoint_chooses_the_lowest(tmp_path):
    _preset_tables(tmp_path / "tiny", {"ptacl": 0.40, "global": 0.45}, {"ptacl": 0.70, "global": 0.60})
    _preset_tables(tmp_path / "tiny_resnet", {"ptacl": 0.50, "global": 0.30}, {"ptacl": 0.55, "global": 0.50})
    lower = EndpointPlan(endpoints=(Endpoint("family R²", "primary", "probe", "r2", FAMILY, higher_is_better=False),))
    table = encoder_table({"tiny": tmp_path / "tiny", "tiny_resnet": tmp_path / "tiny_resnet"}, lower)
    assert set(table[table.chosen].preset) == {"tiny"}


def test_a_cohort_without_a_validation_split_gives_no_choice():
    rng, latent, phenotypes, splits = _cohort()
    splits = np.where(splits == "val", "train", splits)
    assert validation_probe({("ptacl", 0): latent}, phenotypes, splits, np.arange(240).astype(str), NAMES, PLAN).empty


def _preset_tables(folder: Path, val: dict, test: dict, seeds=3):
    """A preset's tables: probe_validation rows with family values ``val[method]`` per seed, endpoint samples with
    test values ``test[method]``."""
    rows = [{"method": m, "seed": s, "fraction": 1.0, "phenotype": p, "r2": v + 0.01 * s + (0.02 if p == FAMILY[0] else -0.02),
             "split": "val"} for m, v in val.items() for s in range(seeds) for p in FAMILY]
    layout.write_table(pd.DataFrame(rows), folder, layout.PROBE_VALIDATION)
    rng = np.random.default_rng(len(str(folder)))
    samples = {(e.name, m): (np.full(seeds, v), rng.normal(v, 0.02, (seeds, 40))) for e in PLAN.endpoints for m, v in test.items()}
    save_samples(folder / layout.endpoint_samples_name("probe"), PLAN, "probe", lambda e, m: samples.get((e.name, m)))


def test_the_choice_is_made_on_validation_and_both_are_reported_on_test(tmp_path):
    # the ResNet wins on validation, the ViT on test: the choice must follow validation
    _preset_tables(tmp_path / "tiny", {"ptacl": 0.40, "global": 0.45}, {"ptacl": 0.70, "global": 0.60})
    _preset_tables(tmp_path / "tiny_resnet", {"ptacl": 0.50, "global": 0.30}, {"ptacl": 0.55, "global": 0.50})
    table = encoder_table({"tiny": tmp_path / "tiny", "tiny_resnet": tmp_path / "tiny_resnet"}, PLAN)
    assert set(table[table.chosen].preset) == {"tiny_resnet"}
    val = table[table.split == "val"].set_index(["preset", "method"]).value
    assert val[("tiny_resnet", "ptacl")] == pytest.approx(0.50 + 0.01)  # family mean per seed, then over seeds 0-2
    assert val[("tiny", "global")] == pytest.approx(0.45 + 0.01)
    test = table[table.split == "test"]
    assert len(test) == 2 * 2 * len(PLAN.endpoints)  # both presets, both methods, every endpoint
    ptacl = test[(test.method == "ptacl") & (test.endpoint == "other R²")].set_index("preset")
    assert ptacl.value["tiny"] == pytest.approx(0.70) and ptacl.ci_low["tiny"] < 0.70 < ptacl.ci_high["tiny"]
    reading = encoder_reading(table, PLAN)
    assert reading.startswith("Chosen on validation: tiny_resnet") and "tiny 0.410 (3 seeds)" in reading
    assert "Test other R²:" in reading and "tiny PTACL 0.700" in reading


def test_bad_encoder_inputs_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="probe_validation.csv"):
        encoder_table({"tiny": tmp_path / "a", "tiny_resnet": tmp_path / "b"}, PLAN)
    with pytest.raises(ValueError, match="different preprocessing"):
        encoder_table({"tiny": tmp_path / "a", "paper": tmp_path / "b"}, PLAN)
    with pytest.raises(ValueError, match="unknown preset"):
        encoder_table({"tiny": tmp_path / "a", "huge": tmp_path / "b"}, PLAN)
    for bad in ("tiny", "tiny,tiny", ""):
        with pytest.raises(ValueError, match="encoder_presets"):
            parse_presets(bad)


def test_the_profile_builds_the_cohort_once_then_trains_and_evaluates_each_preset(tmp_path):
    notebooks = [Path(f"notebooks/{name}.ipynb") for name in ("00_cohort", "01_preprocessing", "02_pretraining",
                                                               "03_linear_probing", "04_retrieval", "08_encoders")]
    parameters = {**PROFILES["encoders"], "figures_dir": str(tmp_path / "figures")}
    steps = encoder_steps(notebooks, tmp_path / "out", parameters)
    assert {s.parameters["runs_dir"] for s in steps} == {str(paths.runs_root() / "encoders")}  # not make reproduce's runs/
    assert steps[0].parameters["figures_dir"] == str(tmp_path / "figures/encoders") and steps[0].output_dir == tmp_path / "out/encoders"
    assert [(s.notebook.name[:2], s.label) for s in steps] == [
        ("00", ""), ("01", ""), ("02", "tiny"), ("03", "tiny"), ("04", "tiny"),
        ("02", "tiny_resnet"), ("03", "tiny_resnet"), ("04", "tiny_resnet"), ("08", "")]
    assert steps[0].parameters["null_twin"] is False
    for step in steps[2:8]:
        assert step.parameters["preset"] == step.label
        assert step.parameters["figures_dir"] == str(tmp_path / f"figures/encoders/{step.label}")
        assert step.output_dir == tmp_path / f"out/encoders/{step.label}"
    assert steps[-1].parameters["figures_dir"] == str(tmp_path / "figures/encoders")
    assert "08_encoders.ipynb" not in [p.name for p in list_notebooks()]


def test_the_choice_figure_meets_the_figure_standard(tmp_path):
    import matplotlib.pyplot as plt

    from ptacl_core.plotting.checks import figure_problems
    from ptacl_core.plotting.encoders import plot_encoder_choice

    _preset_tables(tmp_path / "tiny", {"ptacl": 0.40, "global": 0.45}, {"ptacl": 0.70, "global": 0.60})
    _preset_tables(tmp_path / "tiny_resnet", {"ptacl": 0.50, "global": 0.30}, {"ptacl": 0.55, "global": 0.50})
    figure = plot_encoder_choice(encoder_table({"tiny": tmp_path / "tiny", "tiny_resnet": tmp_path / "tiny_resnet"}, PLAN))
    assert figure_problems(figure) == []
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["ViT (tiny)", "1-D ResNet (tiny)\n(chosen)"]
    figure.savefig(tmp_path / "choice.png")
    plt.close(figure)
