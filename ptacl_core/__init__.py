"""PTACL reproducibility kit: joint ECG / cine-CMR representation learning.

One folder per stage, lowest first; a module imports only from stages before its own:

- ``leads``, ``phenotypes``: the data contract (lead order; phenotype names, units, measured from masks).
- ``config`` (one override API for the typed configs), ``paths`` (default folders), ``methods`` (the registry).
- ``tools``: the notebook runner, the git filter that keeps outputs out of notebooks, thread settings.
- ``io``: readers for each source format (``io.ecg`` one module per ECG format, ``io.cmr``) and the cohort tables.
- ``model``: encoders, losses, cardiac phases, phase geometry, presets (no training or evaluation).
- ``plotting``: the kit's figure style and the figures of the notebooks.
- ``preprocessing``: paired ECG + cine into the memory-mapped training cache, and its torch Dataset.
- ``synthetic``: the embedded default cohort, its information audit and realism checks.
- ``training``: objectives, the loop (CPU, GPU, DDP), the training plan, the run folder.
- ``evaluation``: embeddings, probes, retrieval, statistics, endpoints, findings and the report.
- ``prediction`` (ECG-only ``predict``) and ``explore`` (notebook 06's JupyterLab widgets).
"""

__version__ = "0.1.0"
