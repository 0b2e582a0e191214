from pathlib import Path

import pytest

from ptacl_core import paths
from ptacl_core.synthetic import generate_cohort

N_TEST_SUBJECTS = 60


@pytest.fixture(scope="session")
def realdata() -> Path:
    folder = paths.realdata_dir()
    if folder is None:
        pytest.skip("../shared/realdata is absent (real-data tests run only beside the shared folder)")
    return folder


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """A small synthetic cohort shared by the tests (generated once per session)."""
    out = tmp_path_factory.mktemp("cohort")
    summary = generate_cohort(out, N_TEST_SUBJECTS, seed=7, workers=2, progress=False)
    assert not summary["failures"], summary["failures"]
    return out


@pytest.fixture(scope="session")
def tiny_cache(cohort, tmp_path_factory) -> Path:
    """The test cohort preprocessed with the ``tiny`` preset."""
    from ptacl_core.preprocessing.build import build_cache
    from ptacl_core.preprocessing.config import PreprocessConfig

    folder = tmp_path_factory.mktemp("tiny_cache")
    build_cache(cohort, folder, PreprocessConfig.preset("tiny"), workers=2, progress=False)
    return folder


@pytest.fixture(scope="session")
def trained_runs(tiny_cache, tmp_path_factory) -> Path:
    """A runs folder with short runs named as notebook 02 names them: ptacl and global, seed 0 (2 epochs)."""
    from ptacl_core.training import TrainConfig, run_name, train

    runs = tmp_path_factory.mktemp("runs")
    for method in ("ptacl", "global"):
        config = TrainConfig(method=method, cache=str(tiny_cache), runs_dir=str(runs), name=run_name(method, "tiny", 0))
        train(config.with_overrides(["optim.epochs=2", "optim.batch_size=8"]), progress=False)
    return runs


@pytest.fixture
def double_precision():
    """float64 as torch's default dtype for one test (loop references), restored after it (other tests build
    float32 models)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
