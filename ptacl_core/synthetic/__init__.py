"""The embedded default cohort: synthetic paired ECG + cine CMR with known ground truth (METHOD.md §6).

- ``config``: the generator's typed settings (saved in ``cohort.json``);
- ``latent``: one subject's latent heart, what both modalities are generated from;
- ``dipole_ecg``: the 12-lead ECG from a dipole (vectorcardiogram) model;
- ``cine_phantom``: the short-axis cine and its ground-truth masks;
- ``cohort``: generating and writing a cohort (resumable, byte-identical per seed), reading a subject back;
- ``audit``: the information audit (what an ECG could tell about each phenotype, through which channel);
- ``realism``: the same measurements on synthetic and real recordings, and published reference ranges.
"""

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
