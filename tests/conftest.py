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
