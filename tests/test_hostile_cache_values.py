"""A cache never holds NaN or Inf: a subject whose preprocessed ECG or cine is not finite (a filter's NaN, a value
beyond float16's ±65504) is that subject's recorded failure, and the build goes on."""

import numpy as np
import pandas as pd
import pytest

import ptacl_core.preprocessing.subject as subject_module
from ptacl_core.io.cohort_tables import read_cohort
from ptacl_core.preprocessing.config import PreprocessConfig


@pytest.mark.parametrize("which, stage", [("ecg", "ecg_quality"), ("cmr", "cmr_quality")])
@pytest.mark.parametrize("bad", [np.nan, 1e6], ids=["nan", "beyond_float16"])
def test_a_subject_whose_preprocessed_arrays_are_not_finite_is_a_failure(cohort, monkeypatch, which, stage, bad):
    name = "preprocess_ecg" if which == "ecg" else "preprocess_cmr"
    original = getattr(subject_module, name)

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        array = out.signal if which == "ecg" else out.cine
        array.reshape(-1)[3] = bad
        return out

    monkeypatch.setattr(subject_module, name, poisoned)
    row = read_cohort(cohort).iloc[0].to_dict()
    failure, ecg, cmr = subject_module.process_subject(cohort, row, PreprocessConfig.preset("tiny"))
    assert ecg is None and cmr is None
    assert failure["stage"] == stage and "after preprocessing" in failure["reason"]
    assert failure["reason"].startswith(str(cohort / row[which]))  # names the file


def test_a_finite_subject_is_unchanged(cohort):
    row = read_cohort(cohort).iloc[0].to_dict()
    meta, ecg, cmr = subject_module.process_subject(cohort, row, PreprocessConfig.preset("tiny"))
    assert ecg is not None and np.isfinite(ecg).all() and np.isfinite(cmr).all() and isinstance(meta, dict)
    assert not pd.isna(meta["ed_frame"])
