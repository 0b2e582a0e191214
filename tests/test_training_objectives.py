"""The objectives the method registry names: each method's loss against the explicit formula (brute-force loops), the
registry's weights as the methods define them, no method-name switches in the training code, and the training plan's
one home."""

import ast
import json
import math
from pathlib import Path

import pytest
import torch
from test_losses import _cross_patient_loop, _global_loop, _local_loop  # the brute-force references' home

from ptacl_core.methods import METHODS, TRAINABLE
from ptacl_core.phenotypes import PHENOTYPES
from ptacl_core.training.config import TrainConfig
from ptacl_core.training.objective import OBJECTIVES, Contrastive, MaskedAutoencoding, Supervised, build_objective
from ptacl_core.training.plan import PlanSettings

ROOT = Path(__file__).resolve().parent.parent
FS, SIGMA, LAM = 250.0, 0.05, 0.5
# (global weight, local weight) of each contrastive method: what METHOD.md §4-5 defines them as
WEIGHTS = {"global": (1.0, 0.0), "local": (0.0, 1.0), "ptacl": (1.0, 1.0), "ptacl_cross": (1.0, 1.0),
           "ptacl_sham": (1.0, 1.0), "ptacl_noaug": (1.0, 1.0), "ptacl_mae": (1.0, 1.0)}


def _batch(size: int = 4) -> dict:
    """A tiny-preset batch: ECG (B, 12, 2500) at 250 Hz, cine (B, 24, 48, 48), R peaks at a different RR per patient,
    phenotypes (B, 10) with a few unknown."""
    generator = torch.Generator().manual_seed(0)
    rpeaks = torch.full((size, 16), -1, dtype=torch.long)
    for i in range(size):
        beats = torch.arange(20, 2500, int((0.7 + 0.1 * i) * FS))
        rpeaks[i, : len(beats)] = beats
    phenotypes = torch.randn(size, len(PHENOTYPES), generator=generator) * 5 + 50
    phenotypes[0, 1] = phenotypes[2, 4] = float("nan")
    return {"ecg": torch.randn(size, 12, 2500, generator=generator), "rpeaks": rpeaks, "phenotypes": phenotypes,
            "cmr": torch.rand(size, 24, 48, 48, generator=generator)}


def _objective(method: str):
    config = TrainConfig(method=method).with_overrides({"loss.lam": LAM})
    stats = (torch.full((len(PHENOTYPES),), 50.0), torch.full((len(PHENOTYPES),), 5.0))
    torch.manual_seed(0)
    return build_objective(config, FS, stats, soft_sigma=SIGMA).eval(), config


def test_every_trainable_method_names_a_registered_objective():
    for name, method in METHODS.items():
        assert method.trainable == (name in TRAINABLE) == bool(method.objective)
        if method.trainable:
            assert method.objective in OBJECTIVES, name
        assert (method.objective == "contrastive") == method.contrastive, name  # the kind and the objective agree
        if method.objective == "masked_autoencoding":
            assert len(method.trains) == 1, name  # it masks the one encoder it trains
    assert {n: (m.global_weight, m.local_weight) for n, m in METHODS.items() if m.contrastive} == WEIGHTS
    assert all(m.global_weight == m.local_weight == 0 for m in METHODS.values() if not m.contrastive)
    expected = {"mae_ecg": MaskedAutoencoding, "mae_cmr": MaskedAutoencoding, "supervised": Supervised}
    for method in TRAINABLE:
        assert type(_objective(method)[0]) is expected.get(method, Contrastive), method


@pytest.mark.usefixtures("double_precision")
@pytest.mark.parametrize("method", sorted(WEIGHTS))
def test_a_contrastive_objective_is_its_weighted_terms(method):
    """loss = global weight * L_global + local weight * lam * L_local, each term the brute-force loop's, on the
    method's phases (the sham arm's from patient i - 1's R peaks), with the configured temperatures and sigma."""
    objective, config = _objective(method)
    batch = _batch()
    global_weight, local_weight = WEIGHTS[method]
    rpeaks = batch["rpeaks"][[len(batch["rpeaks"]) - 1, *range(len(batch["rpeaks"]) - 1)]]  # patient i: i - 1's beats
    phases = {**batch, "rpeaks": rpeaks} if method == "ptacl_sham" else batch
    with torch.no_grad():
        loss, parts = objective(batch)
        features = objective.model.phase_embeddings(phases, FS, config.loss.num_bins)
    local_loop = _cross_patient_loop if method == "ptacl_cross" else _local_loop
    expected_global = _global_loop(features.z_ecg, features.z_cmr, config.loss.temperature, config.loss.alpha)
    expected_local = local_loop(features.u_ecg, features.u_cmr, features.mask, config.loss.local_temperature, SIGMA)
    expected = global_weight * expected_global + local_weight * LAM * expected_local
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)  # the local targets are float32
    if global_weight:
        assert float(parts["global"]) == pytest.approx(float(expected_global), rel=1e-9)
    if local_weight:
        assert float(parts["local"]) == pytest.approx(float(expected_local), rel=1e-6)
    assert objective.uses_every_parameter == (global_weight > 0 and local_weight > 0)
    with torch.no_grad():
        validation, true_features = objective.validation_loss(batch)  # the margin's features: the true R peaks
        assert torch.equal(true_features.u_ecg, objective.model.phase_embeddings(batch, FS, config.loss.num_bins).u_ecg)
    assert float(validation) == pytest.approx(float(loss), rel=1e-9)


@pytest.mark.usefixtures("double_precision")
def test_the_supervised_objective_is_the_mean_squared_error_over_known_labels():
    objective, _ = _objective("supervised")
    batch = _batch()
    with torch.no_grad():
        loss, parts = objective(batch)
        prediction = objective.supervised.head(objective.model.ecg_encoder(batch["ecg"])[1])
    errors = [(prediction[i, p] - (batch["phenotypes"][i, p] - 50.0) / 5.0) ** 2
              for i in range(len(prediction)) for p in range(len(PHENOTYPES)) if math.isfinite(batch["phenotypes"][i, p])]
    assert float(loss) == pytest.approx(float(sum(errors) / len(errors)), rel=1e-9) and parts == {}
    assert not objective.uses_every_parameter


@pytest.mark.parametrize("method, modality, other", [("mae_ecg", "ecg", "cmr"), ("mae_cmr", "cmr", "ecg")])
def test_a_masked_autoencoder_reconstructs_the_encoder_its_method_trains(method, modality, other):
    objective, _ = _objective(method)
    batch = _batch()
    assert objective.mae.encoder is getattr(objective.model, f"{modality}_encoder")
    with torch.no_grad():
        torch.manual_seed(3)
        loss, parts = objective(batch)
        torch.manual_seed(3)
        reference = objective.mae(batch[modality])
        torch.manual_seed(3)
        without_other = objective({**batch, other: torch.full_like(batch[other], float("nan"))})[0]
    assert torch.equal(loss, reference) and torch.equal(loss, without_other) and parts == {}
    assert not objective.uses_every_parameter and objective.validation_loss(batch)[1] is None


def _method_name_comparisons(source: str) -> list[str]:
    """``x == "global"``, ``m in ("local", ...)``, ``case "ptacl":``: comparisons against a method's name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.MatchValue):
            operands = [node.value]
        else:
            continue
        for operand in operands:
            elements = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            found += [f"line {node.lineno}: {e.value!r}" for e in elements
                      if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in METHODS]
    return found


def test_no_training_code_switches_on_a_method_name():
    """Method behaviour comes from the method record (``Method.objective``, its weights, ``trains``, ...)."""
    assert _method_name_comparisons('if config.method == "global":\n    pass') == ["line 1: 'global'"]  # it can fail
    assert _method_name_comparisons('x = m in ("mae_ecg", "x")') == ["line 1: 'mae_ecg'"]
    switches = {str(path.relative_to(ROOT)): found for folder in ("training", "model")
                for path in sorted((ROOT / "ptacl_core" / folder).glob("*.py"))
                if (found := _method_name_comparisons(path.read_text()))}
    assert not switches, switches


def test_the_training_plan_has_one_home():
    """(The plan's order itself: tests/test_prediction.py::test_training_plan.)"""
    definitions = {str(p.relative_to(ROOT)) for p in (ROOT / "ptacl_core").rglob("*.py")
                   for node in ast.walk(ast.parse(p.read_text()))
                   if isinstance(node, ast.FunctionDef) and node.name in ("training_plan", "train_plan")}
    assert definitions == {"ptacl_core/training/plan.py"}
    notebook = json.loads((ROOT / "notebooks" / "02_pretraining.ipynb").read_text())
    code = "".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert "train_plan(plan, settings," in code and "TrainConfig(" not in code and "train(" not in code.replace("_train(", "")


def test_a_planned_run_config_is_notebook_02s():
    """Each setting lands where notebook 02's loop put it; K: the preset's unless num_bins is given."""
    settings = PlanSettings("tiny", Path("cache"), Path("runs"), epochs=3, batch_size=8, lr=1e-3, lam=0.5, fast=True,
                            device="cpu", threads=1)
    config = settings.config("ptacl_mae", 2, init_from="a,b")
    expected = TrainConfig(method="ptacl_mae", cache="cache", runs_dir="runs", device="cpu", name="ptacl_mae_tiny_seed2_fast",
                           seed=2, init_from="a,b", threads=1).with_overrides(
        ["preset=tiny", "optim.epochs=3", "optim.batch_size=8", "optim.lr=0.001", "loss.lam=0.5"])
    assert config == expected and settings.phase_bins == config.loss.num_bins == 7
    paper = PlanSettings("paper", "c", "r", 1, 8, 1e-3, 1.0, num_bins=12)
    assert paper.config("ptacl", 0).loss.num_bins == paper.phase_bins == 12
    assert PlanSettings("paper", "c", "r", 1, 8, 1e-3, 1.0).phase_bins == 16
