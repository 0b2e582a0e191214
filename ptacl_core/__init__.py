"""PTACL reproducibility kit: joint ECG / cine-CMR representation learning.

The package is small on purpose; each module is one domain concept:

- ``leads``, ``phenotypes``: the data contract (lead order, phenotype names and units).
- ``io``: readers for each source format (WFDB, UK Biobank XML, NIfTI, ...).
- ``ecg_measures``: R-peaks, median beats, QRS duration and amplitudes measured from signals.
- ``synthetic``: the embedded default cohort (paired ECG + cine, known ground truth).
- ``realism``: how the synthetic cohort compares with real recordings and reference ranges.
- ``plotting``: the figures the notebooks show.
- ``runner``: executes the numbered notebooks in order with papermill.
"""

__version__ = "0.1.0"
