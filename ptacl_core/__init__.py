"""PTACL reproducibility kit: joint ECG / cine-CMR representation learning.

The package is small on purpose; each module is one domain concept:

- ``leads``, ``phenotypes``: the data contract (lead order, phenotype names and units).
- ``io``: readers for each source format (WFDB, UK Biobank XML, NIfTI, ...).
- ``ecg_measures``: R-peaks, median beats, QRS duration and amplitudes measured from signals.
- ``synthetic``: the embedded default cohort (paired ECG + cine, known ground truth).
- ``realism``: how the synthetic cohort compares with real recordings and reference ranges.
- ``plotting``: the figures the notebooks show.
- ``runner``: executes the numbered notebooks in order with papermill.
- ``explore``: the JupyterLab widgets of notebook 06 (patient viewer, retrieval explorer, maps).
- ``csv_cells``: formula-safe CSV cells for every table the kit writes with text from a cohort.
- ``notebook_guard``: the git filter that keeps outputs out of committed notebooks.
"""

__version__ = "0.1.0"
