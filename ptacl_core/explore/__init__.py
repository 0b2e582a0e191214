"""Interactive exploration in JupyterLab (notebook 06): a patient viewer, a retrieval explorer, a linked 2-D
embedding map, a predicted-vs-true scatter and a per-patient K x K phase-similarity browser.

Widgets are ipywidgets; figures are matplotlib figures inside ipympl canvases: the kernel renders them (Agg, the
kit's own plotting style) and the browser receives PNG frames, so nothing is fetched from a CDN and no
whole-cohort array ever reaches the browser. Data is read lazily (``data.ExploreData``): one ECG / cine row of the
memory-mapped cache per displayed subject, embeddings from the notebook-03 store, models, probes and maps on first
use. Option lists shown to the browser are capped (``MAX_OPTIONS``); any subject can be opened by id.

Modules: ``compute`` (plain functions, tested against brute force), ``data`` (``ExploreData``), ``controls``
(the shared run picker, the id box, the canvas with its lock against draws on another kernel thread, frames as
data URLs, and ``html_text`` / ``LITERAL_TEXT``: the one gate cohort text passes into HTML and figures), ``viewer``
(the patient viewer; its cine plays in the browser), ``neighbours`` (the retrieval explorer), ``point_clouds`` (map,
scatter and the point picker), ``phase_browser`` (the K x K browser).
"""

from ptacl_core.explore.compute import (
                                        HOVER_PIXELS,
                                        MAP_MAX_POINTS_TSNE,
                                        MAX_OPTIONS,
                                        centred_cosine,
                                        cine_frames_rgb,
                                        map_coordinates,
                                        nearest_point,
                                        phase_bin_edges,
                                        phase_samples,
                                        phase_similarity_matrix,
                                        probe_predictions,
                                        select_subjects,
                                        worst_predicted,
)
from ptacl_core.explore.controls import RunPicker
from ptacl_core.explore.data import DEFAULT_METHOD, ExploreData, label_fractions
from ptacl_core.explore.neighbours import RetrievalExplorer
from ptacl_core.explore.phase_browser import PhaseSimilarityBrowser
from ptacl_core.explore.point_clouds import EmbeddingMap, PointPicker, PredictionScatter
from ptacl_core.explore.viewer import PatientViewer

NO_RUNS = ("no finished runs for this cache yet: run notebook 02 (or `python -m ptacl_core run --only 01,02,03`) "
           "for predictions, retrieval, the map and phase similarity; the patient viewer works without them")

__all__ = ["HOVER_PIXELS", "MAP_MAX_POINTS_TSNE", "MAX_OPTIONS", "NO_RUNS", "DEFAULT_METHOD", "EmbeddingMap",
           "ExploreData", "PatientViewer", "PhaseSimilarityBrowser", "PointPicker", "PredictionScatter",
           "RetrievalExplorer", "RunPicker", "centred_cosine", "cine_frames_rgb", "label_fractions", "map_coordinates", "nearest_point",
           "phase_bin_edges", "phase_samples", "phase_similarity_matrix", "probe_predictions", "select_subjects",
           "worst_predicted"]
