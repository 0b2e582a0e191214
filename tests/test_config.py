"""The override API shared by every typed config, the method registry and the preset table."""

import dataclasses

import pytest

from ptacl_core.config import override, parse_overrides
from ptacl_core.evaluation.probing import ProbeConfig
from ptacl_core.methods import METHODS, TRAINABLE, label, ordered
from ptacl_core.model.encoders import MODEL_PRESETS
from ptacl_core.model.presets import PRESETS, preprocessing_preset
from ptacl_core.preprocessing.config import PRESETS as PREPROCESSING_PRESETS
from ptacl_core.preprocessing.config import PreprocessConfig
from ptacl_core.synthetic import SynthConfig
from ptacl_core.training.config import TrainConfig


def test_override_replaces_nested_values_and_leaves_the_original():
    config = TrainConfig()
    changed = override(config, {"optim.epochs": 3, "loss.lam": 0.5, "seed": 4, "model.ecg.depth": 1})
    assert (changed.optim.epochs, changed.loss.lam, changed.seed, changed.model.ecg.depth) == (3, 0.5, 4, 1)
    assert config.optim.epochs == 10 and config.model.ecg.depth == 2  # frozen: a copy
    assert changed.optim.lr == config.optim.lr and changed.model.cmr == config.model.cmr


def test_override_reruns_validation():
    with pytest.raises(ValueError, match="method must be one of"):
        override(TrainConfig(), {"method": "clip"})
    with pytest.raises(ValueError, match="label fractions"):
        override(ProbeConfig(), {"fractions": (0.0,)})
    with pytest.raises(ValueError, match="n_slices"):
        override(SynthConfig(), {"n_slices": 1})


@pytest.mark.parametrize("values, message", [({"optim.epoch": 3}, "unknown config key 'epoch'"),
                                             ({"optimiser.epochs": 3}, "unknown config section 'optimiser'"),
                                             ({"seed.value": 3}, "is a value, not a section")])
def test_override_names_the_unknown_key(values, message):
    with pytest.raises(ValueError, match=message):
        override(TrainConfig(), values)


def test_every_typed_config_takes_the_same_overrides():
    assert PreprocessConfig().with_overrides({"ecg.notch_hz": 60.0}).ecg.notch_hz == 60.0
    assert PreprocessConfig().with_overrides(["cmr.size=32"]).cmr.size == 32
    assert override(ProbeConfig(), {"n_bootstrap": 50}).n_bootstrap == 50
    assert override(SynthConfig(), {"n_frames": 30}).n_frames == 30
    assert TrainConfig().with_overrides(["optim.epochs=3"]) == TrainConfig().with_overrides({"optim.epochs": 3})


def test_strings_are_typed_like_the_field():
    values = parse_overrides(TrainConfig(), ["optim.epochs=3", "augment=false", "loss.soft_sigma=0.05", "loss.soft_sigma=none",
                                             "device=cpu"])
    assert values == {"optim.epochs": 3, "augment": False, "loss.soft_sigma": None, "device": "cpu"}
    with pytest.raises(ValueError, match="true or false"):
        parse_overrides(TrainConfig(), ["augment=maybe"])
    assert parse_overrides(ProbeConfig(), ["fractions=0.1,1"]) == {"fractions": (0.1, 1.0)}


def test_a_preset_override_brings_its_model_and_later_model_overrides_apply():
    config = TrainConfig().with_overrides(["preset=paper", "model.ecg.depth=3"])
    assert config.model.cmr == MODEL_PRESETS["paper"].cmr and config.model.ecg.depth == 3
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig().with_overrides({"preset": "huge"})


def test_presets_pair_existing_model_and_preprocessing_presets():
    assert set(PRESETS) == set(MODEL_PRESETS)
    for name in PRESETS:
        preprocessing = PreprocessConfig.preset(preprocessing_preset(name))
        assert preprocessing_preset(name) in PREPROCESSING_PRESETS
        model = MODEL_PRESETS[name]
        # the pair fits: the cache's frames and crops are what the model's CMR encoder is built for
        assert (preprocessing.cmr.n_frames, preprocessing.cmr.size) == (model.cmr.n_frames, model.cmr.image_px)
        assert preprocessing.ecg.n_samples // model.ecg.patch_samples == model.ecg.n_times


def test_method_registry():
    assert set(TRAINABLE) == {"mae_ecg", "mae_cmr", "global", "local", "ptacl", "ptacl_cross", "ptacl_sham", "ptacl_noaug",
                              "ptacl_mae", "supervised"}
    assert TrainConfig(method="ptacl_cross").local_variant == "cross_patient"
    assert TrainConfig(method="ptacl_sham").local_variant == "sham"
    assert TrainConfig(method="ptacl").with_overrides({"loss.local_variant": "cross_patient"}).local_variant == "cross_patient"
    with pytest.raises(ValueError, match="local_variant must be one of"):
        TrainConfig().with_overrides({"loss.local_variant": "diagonal"})
    with pytest.raises(ValueError, match="num_bins must be at least 2"):
        TrainConfig().with_overrides({"loss.num_bins": 1})
    assert TrainConfig().with_overrides({"preset": "paper"}).loss.num_bins == 16  # the preset's K comes with it
    assert len({m.label for m in METHODS.values()}) == len(METHODS)  # labels tell methods apart
    assert len({m.colour for m in METHODS.values()}) == len(METHODS)
    assert ordered(["ptacl", "zzz", "random", "global", "ptacl"]) == ["random", "global", "ptacl", "zzz"]
    assert label("ptacl") == "PTACL" and label("unknown") == "unknown"
    assert all(dataclasses.is_dataclass(m) for m in METHODS.values())


def test_the_shipped_configs_point_at_caches_the_kit_builds(monkeypatch, tmp_path):
    from ptacl_core import paths
    from ptacl_core.preprocessing.cache import default_cache_dir
    from ptacl_core.training.config import load_config
    from ptacl_core.training.setup import resolve_cache

    monkeypatch.setenv("PTACL_DATA", str(tmp_path))
    for name, preprocessing in (("tiny_ptacl", "tiny"), ("paper_ptacl", "default")):
        config = load_config(paths.project_root() / "configs" / f"{name}.json")
        # notebook 01's cache for the default cohort and the preset's preprocessing
        assert resolve_cache(config) == default_cache_dir(paths.default_cohort_dir(), preprocessing)
        assert resolve_cache(config).parent == tmp_path / "cache"
    assert resolve_cache(TrainConfig(cache="elsewhere")) == __import__("pathlib").Path("elsewhere")


@pytest.mark.parametrize("values, message", [({"optim.epochs": "3"}, "optim.epochs expects an integer"),
                                             ({"augment": 1}, "augment expects true or false"),
                                             ({"optim.lr": "fast"}, "optim.lr expects a number"),
                                             ({"device": 0}, "device expects a string"),
                                             ({"model": {"ecg": {}}}, "model expects ModelConfig")])
def test_override_refuses_a_value_of_the_wrong_kind(values, message):
    with pytest.raises(ValueError, match=message):
        override(TrainConfig(), values)


def test_override_converts_what_is_safe():
    changed = override(TrainConfig(), {"optim.lr": 1, "loss.soft_sigma": 0.05})
    assert changed.optim.lr == 1.0 and isinstance(changed.optim.lr, float) and changed.loss.soft_sigma == 0.05
    assert override(ProbeConfig(), {"fractions": [0.5, 1]}).fractions == (0.5, 1)


def test_an_unknown_preset_is_refused_by_the_config_itself():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        TrainConfig(preset="huge")


def test_checkpoint_path_and_run_folder(tmp_path):
    from ptacl_core.training.runs import checkpoint_path, run_folder

    run = tmp_path / "ptacl_tiny_seed0"
    (run / "checkpoints").mkdir(parents=True)
    assert checkpoint_path(run) == run / "checkpoints" / "last.pt"
    assert checkpoint_path(run / "checkpoints" / "epoch3.pt") == run / "checkpoints" / "epoch3.pt"
    assert checkpoint_path(tmp_path / "weights") == tmp_path / "weights"  # a file without a suffix stays a file
    assert run_folder(run) == run and run_folder(run / "checkpoints" / "last.pt") == run.resolve()


def test_the_presets_phase_bins_are_at_least_a_token_wide():
    """Geometry (METHOD.md §4): each preset's K leaves a bin (RR / K) at least one ECG token wide at the default
    cohort's median RR (0.9 s) and at 0.75 s (its 10th percentile)."""
    from ptacl_core.model.geometry import check_geometry, phase_geometry

    for name, preset in PRESETS.items():
        model = MODEL_PRESETS[name]
        fs = PreprocessConfig.preset(preprocessing_preset(name)).ecg.fs
        token = model.ecg.patch_samples / fs
        assert 0.75 / preset.num_bins >= token, name
        check_geometry(phase_geometry(token, preset.num_bins, [0.9] * 10), name)
