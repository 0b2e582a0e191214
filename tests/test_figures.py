"""Every figure of the kit meets the figure standard (``plotting.checks.figure_problems``: labels with units,
no overlapping text, no text over data, a two-column size), built from small synthetic inputs; and the checker
itself catches each kind of break."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ptacl_core.evaluation.training_summary import plot_learning_curves  # noqa: E402
from ptacl_core.methods import METHODS  # noqa: E402
from ptacl_core.phenotypes import PHENOTYPES  # noqa: E402
from ptacl_core.plotting import cohort, comparison  # noqa: E402
from ptacl_core.plotting.checks import figure_problems  # noqa: E402
from ptacl_core.plotting.style import CONDITION_COLOURS, DOUBLE_COLUMN_IN, method_style  # noqa: E402

CONDITIONS = list(CONDITION_COLOURS)
RNG_SEED = 3


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _ecg(rng, n=5000, fs=500.0) -> np.ndarray:
    t = np.arange(n) / fs
    beat = np.exp(-(((t % 0.9) - 0.3) ** 2) / 2e-4) - 0.3 * np.exp(-(((t % 0.9) - 0.55) ** 2) / 4e-3)
    return np.stack([beat * (0.5 + 0.1 * k) + 0.02 * rng.standard_normal(n) for k in range(12)])


def _cine(rng, size=40, frames=24) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z, T) image with a zero border and a beating LV disk, and its labels."""
    x, y = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    image = np.zeros((size, size, 3, frames))
    labels = np.zeros((size, size, 3, frames), dtype=int)
    for f in range(frames):
        radius = 8 - 3 * np.sin(np.pi * f / frames)
        r = np.hypot(x - 20, y - 18)
        labels[..., f] = np.where(r < radius, 1, np.where(r < radius + 2, 2, np.where(np.hypot(x - 20, y - 30) < 5, 3, 0)))[..., None]
        image[..., f] = (0.2 + 0.8 * (labels[..., 1, f] == 1) + 0.1 * rng.standard_normal((size, size)))[..., None]
    image[:, -3:] = 0.0  # the crop's zero padding
    return np.clip(image, 0, None), labels


def _summary(rng, methods, fractions=(0.01, 0.1, 1.0)) -> pd.DataFrame:
    rows = []
    for method in methods:
        for fraction in fractions:
            for phenotype in PHENOTYPES:
                value = rng.uniform(-0.3, 0.9) if rng.random() > 0.1 else -3.0
                rows.append({"method": method, "fraction": fraction, "phenotype": phenotype, "r2": value,
                             "r2_low": value - rng.uniform(0.05, 2.0), "r2_high": min(value + rng.uniform(0.05, 0.3), 1.0)})
    return pd.DataFrame(rows)


def _figures():
    """(name, builder) of every plotting function of the kit, on synthetic inputs."""
    rng = np.random.default_rng(RNG_SEED)
    ecg = _ecg(rng)
    image, labels = _cine(rng)
    subjects = [f"SYN{i:06d}" for i in range(60)]
    conditions = {s: CONDITIONS[i % len(CONDITIONS)] for i, s in enumerate(subjects)}
    phenotypes = pd.DataFrame({"condition": [conditions[s] for s in subjects],
                               **{c: rng.normal(100, 20, len(subjects)) for c in
                                  ("LVEDV_mL", "LVEF_pct", "LVM_g", "RVEDV_mL", "RVEF_pct", "HR_bpm", "QRS_ms")}})
    crops = [np.clip(rng.random((24, 32, 32)), 0, 1) for _ in range(6)]
    for crop in crops:
        crop[:, :, -2:] = 0.0
    k = 7
    masks = {m: np.ones((3, k), dtype=bool) for m in ("global", "ptacl", "ptacl_cross")}
    masks["ptacl"][1, 6] = False
    similarities = {m: rng.uniform(0.1, 0.3, (3, k, k)) for m in masks}
    curves = {(m, s): pd.DataFrame({"epoch": np.arange(1, 17), "val_loss": (3 + s) * np.exp(-np.arange(16) / 8) + 1,
                                    "val_margin": 0.01 * np.arange(16) * (m != "global")})
              for m in ("global", "ptacl", "ptacl_cross", "ptacl_sham") for s in range(2)}
    methods = ["random", "global", "ptacl", "ptacl_cross", "ptacl_sham", "supervised", "cmr_ptacl", "condition_label",
               "ecg_measures", "generator_latents", "mae_ecg"]
    summary = _summary(rng, methods)
    predictions = pd.DataFrame([{"method": "ptacl", "seed": 0, "phenotype": p, "subject_id": s,
                                 "true": rng.normal(60, 10), "predicted": rng.normal(60, 10)}
                                for p in ("LVEF_pct", "LVEDV_mL") for s in subjects[:30]])
    frame = lambda: np.pad(rng.random((44, 44)), ((0, 0), (0, 4)))  # noqa: E731 - a zero border on the right
    queries = [{"ecg": ecg, "title": "query", "own_frame": frame(), "condition": CONDITIONS[q], "lvef": 55.0 + q,
                "retrieved": [{"frame": frame(), "title": f"#{r + 1}", "condition": CONDITIONS[(q + r) % 5], "lvef": 40.0 + r}
                              for r in range(3)]} for q in range(3)]
    matrices = {m: rng.uniform(0.05, 0.2, (k, k)) for m in ("global", "ptacl", "ptacl_cross")}
    coordinates = {m: rng.normal(size=(60, 2)) for m in ("random", "global", "ptacl")}
    lvef = rng.uniform(20, 70, 60)
    condition_array = np.array([conditions[s] for s in subjects])
    return [
        ("ecg_12lead", lambda: cohort.plot_ecg_12lead(ecg, 500.0, np.arange(150, 5000, 450), title="SYN000001: 12-lead ECG")),
        ("cine_phases", lambda: cohort.plot_cine_phases(image, labels, 1, 0, 12, 40.0, title="SYN000001: mid slice")),
        ("coupling", lambda: cohort.plot_electromechanical_coupling(ecg[7], 500.0, 600, 100 - 40 * np.sin(np.linspace(0, np.pi, 24)),
                                                                     40.0, t_end_ms=380.0, lead_name="V2", title="SYN000001")),
        ("phenotypes_by_condition", lambda: cohort.plot_phenotypes_by_condition(phenotypes, list(phenotypes.columns[1:]))),
        ("phenotypes_by_condition_full_rows", lambda: cohort.plot_phenotypes_by_condition(phenotypes, ["LVEDV_mL", "LVEF_pct"])),
        ("ecg_before_after", lambda: cohort.plot_ecg_before_after(ecg, 500.0, ecg[:, ::2], 250.0, np.arange(75, 2500, 225),
                                                                   title="SYN000001: raw vs preprocessed")),
        ("cine_grid", lambda: cohort.plot_cine_grid(crops, [0] * 6, [10] * 6, subjects[:6])),
        ("rr_and_flags", lambda: cohort.plot_rr_and_flags(rng.normal(900, 100, 400),
                                                          pd.Series({"low_snr": 4, "rr_irregular": 2}))),
        ("rr_no_flags", lambda: cohort.plot_rr_and_flags(rng.normal(900, 100, 400), pd.Series(dtype=int))),
        ("phase_similarity", lambda: cohort.plot_phase_similarity(similarities, masks, n_patients=3)),
        ("learning_curves", lambda: plot_learning_curves(curves)),
        ("learning_curves_one_epoch", lambda: plot_learning_curves({k: v.head(1) for k, v in curves.items()})),
        ("probe_r2", lambda: comparison.plot_probe_r2(summary, 1.0)),
        ("predicted_vs_true", lambda: comparison.plot_predicted_vs_true(predictions, conditions, "ptacl", 0)),
        ("retrieval_panel", lambda: comparison.plot_retrieval_panel(queries, 500.0, method="ptacl")),
        ("phase_alignment", lambda: comparison.plot_mean_phase_alignment(matrices)),
        ("embedding_map", lambda: comparison.plot_embedding_map(coordinates, lvef, condition_array, "tsne")),
        ("label_efficiency", lambda: comparison.plot_label_efficiency(summary)),
    ]


@pytest.mark.parametrize("name, build", _figures(), ids=[name for name, _ in _figures()])
def test_every_figure_meets_the_standard(name, build):
    figure = build()
    assert figure_problems(figure) == []
    assert figure.get_size_inches()[0] <= DOUBLE_COLUMN_IN


def test_methods_and_reference_rows_are_drawn_apart():
    references = [m for m, row in METHODS.items() if row.kind == "reference"]
    others = [m for m in METHODS if m not in references]
    assert all(method_style(m)["markerfacecolor"] == "white" and method_style(m)["linestyle"] == "--" for m in references)
    assert all(method_style(m)["markerfacecolor"] != "white" and method_style(m)["linestyle"] == "-" for m in others)
    assert len({method_style(m)["marker"] for m in references}) == len(references)


# The checker: each rule gets a figure that breaks it.

def _labelled(axis, x="time (s)", y="LVEF (%)"):
    axis.set_xlabel(x)
    axis.set_ylabel(y)


def test_a_clean_figure_has_no_problems():
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    axis.plot([0, 1], [0, 1])
    _labelled(axis)
    assert figure_problems(figure) == []


@pytest.mark.parametrize("missing", ["x", "y"])
def test_a_data_axes_without_a_label_is_a_problem(missing):
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    axis.plot([0, 1], [0, 1])
    _labelled(axis, x="" if missing == "x" else "time (s)", y="" if missing == "y" else "LVEF (%)")
    assert any(f"no {missing} label" in p for p in figure_problems(figure))


def test_a_label_of_a_stacked_or_twin_axes_may_come_from_the_axes_it_shares():
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(3.5, 3), layout="constrained")
    for axis in (top, bottom):
        axis.plot([0, 1], [0, 1])
        axis.set_ylabel("II (mV)")
    bottom.set_xlabel("time (s)")
    twin = bottom.twinx()
    twin.plot([0, 1], [1, 0])
    twin.set_ylabel("LV volume (mL)")
    assert figure_problems(figure) == []


def test_a_label_without_its_unit_is_a_problem_and_a_unitless_quantity_is_not():
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    axis.plot([0, 1], [0, 1])
    _labelled(axis, x="epoch", y="LVEF")
    assert [p for p in figure_problems(figure) if "unit" in p] == ["axes 0: y label 'LVEF' has no unit in parentheses "
                                                                  "(or is not a unit-less quantity of checks.UNITLESS)"]


def test_a_categorical_axis_needs_a_label_but_no_unit():
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    axis.barh(["PTACL", "global only"], [1, 2])
    _labelled(axis, x="subjects", y="method")
    assert figure_problems(figure) == []


def test_a_colour_bar_without_a_label_is_a_problem():
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    figure.colorbar(axis.imshow(np.eye(3)), ax=axis)
    axis.axis("off")
    assert figure_problems(figure) == ["axes 1: colour bar without a label"]


def test_a_picture_with_its_axis_off_needs_no_labels():
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    axis.imshow(np.eye(3))
    axis.axis("off")
    assert figure_problems(figure) == []


def test_overlapping_texts_are_a_problem():
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    axis.plot([0, 1], [0, 1])
    _labelled(axis)
    axis.set_title("a long title over the other one")
    figure.suptitle("a long title over the other one", y=0.93)
    figure.set_layout_engine("none")
    assert any("overlaps" in p for p in figure_problems(figure))


def test_crowded_tick_labels_are_a_problem():
    figure, axis = plt.subplots(figsize=(1.5, 1.5))
    axis.bar(range(8), range(8))
    axis.set_xticks(range(8), ["dilated cardiomyopathy"] * 8)
    _labelled(axis, x="condition", y="subjects")
    assert any("tick label" in p and "overlaps" in p for p in figure_problems(figure))


def test_a_text_leaving_the_figure_is_a_problem():
    figure, axis = plt.subplots(figsize=(3.5, 2.5))
    axis.plot([0, 1], [0, 1])
    _labelled(axis)
    axis.annotate("far away", (1, 1), xytext=(400, 0), textcoords="offset points")
    assert any("leaves the figure" in p for p in figure_problems(figure))


def test_a_legend_over_data_is_a_problem():
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    axis.scatter(np.linspace(0, 1, 30), np.full(30, 0.5), label="points")
    axis.plot([0, 1], [0, 1], label="a line")
    axis.set_ylim(0, 1)
    _labelled(axis)
    axis.legend(loc="center")
    assert any("legend covers data" in p for p in figure_problems(figure))


def test_a_raw_column_name_is_a_problem():
    figure, axis = plt.subplots(figsize=(3.5, 2.5), layout="constrained")
    axis.plot([0, 1], [0, 1])
    _labelled(axis, y="CMR LVEF_pct (%)")
    assert any("raw column" in p for p in figure_problems(figure))


def test_small_fonts_and_a_wide_figure_are_problems():
    figure, axis = plt.subplots(figsize=(11, 3), layout="constrained")
    axis.plot([0, 1], [0, 1])
    _labelled(axis)
    axis.set_title("tiny", fontsize=5)
    problems = figure_problems(figure)
    assert any("11.00 in wide" in p for p in problems)
    assert any("'tiny'" in p and "smaller than 7 pt" in p for p in problems)
