"""The embedded default cohort: synthetic paired ECG + cine CMR with known ground truth (METHOD.md §6)."""

from ptacl_core.synthetic.cohort import (
    CohortMismatchError,
    generate_cohort,
    make_subject,
    read_synthetic_subject,
    subject_id,
)
from ptacl_core.synthetic.config import CONDITIONS, INFARCT_TERRITORIES, SynthConfig

__all__ = [
    "CONDITIONS", "INFARCT_TERRITORIES", "CohortMismatchError", "SynthConfig", "generate_cohort", "make_subject",
    "read_synthetic_subject",
    "subject_id",
]
