"""Interactive exploration in JupyterLab (notebook 06): a patient viewer, a retrieval explorer, a linked 2-D
embedding map, a per-patient K x K phase-similarity browser and a predicted-vs-true scatter.

Widgets are ipywidgets; figures are matplotlib figures inside ipympl canvases: the kernel renders them (Agg, the
kit's own plotting style) and the browser receives PNG frames, so nothing is fetched from a CDN and no
whole-cohort array ever reaches the browser. Data is read lazily: one ECG / cine row of the memory-mapped cache
per displayed subject, embeddings from the notebook-03 store (``evaluation.embeddings``), models and probes on
first use. Option lists shown to the browser are capped (``MAX_OPTIONS``), so a cohort of 30,000 subjects costs
the browser what one of 1,000 does.

The computations behind the widgets are plain functions (top of the module) with brute-force references in
``tests/test_explore.py``; the widget classes only wire them to controls and figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl_core.leads import LEAD_NAMES
from ptacl_core.phenotypes import EVALUATED, PHENOTYPES, UNITS

MAX_OPTIONS = 200  # subjects listed in a dropdown at once: the browser never receives the whole cohort
MAP_MAX_POINTS_TSNE = 5000  # t-SNE is O(N log N) but slow in absolute terms: a seeded subset beyond this
HOVER_PIXELS = 8.0  # a point is "under the pointer" within this many screen pixels
LABEL_FRACTIONS = (0.01, 0.1, 1.0)  # notebook 03's label fractions


# --- pure computation ------------------------------------------------------------------------------------------

def select_subjects(index: pd.DataFrame, condition: str | None = None, split: str | None = None, text: str = "",
                    limit: int = MAX_OPTIONS) -> list[str]:
    """Subject ids of ``index`` (columns subject_id, split and optionally condition) matching every given filter,
    in index order, at most ``limit``. text: a case-insensitive substring of the id ("" for any)."""
    keep = np.ones(len(index), dtype=bool)
    if condition:
        if "condition" not in index:
            raise ValueError("this cohort has no condition column; leave the condition filter empty")
        keep &= index["condition"].astype(str).to_numpy() == condition
    if split:
        keep &= index["split"].astype(str).to_numpy() == split
    ids = index["subject_id"].astype(str)
    if text:
        keep &= ids.str.contains(text, case=False, regex=False).to_numpy()
    return ids.to_numpy()[keep][:limit].tolist()


def worst_predicted(true: np.ndarray, predicted: np.ndarray, scale: np.ndarray | None = None, n: int = 20) -> np.ndarray:
    """Rows of the ``n`` worst predictions, worst first.

    true, predicted: (N,) or (N, P); scale: (P,) per-phenotype scale (e.g. the training SD) dividing the errors,
    so that several phenotypes are comparable. The error of a row is the mean absolute (scaled) error over its
    known phenotypes; rows with none known are never listed. Ties keep index order."""
    true, predicted = np.atleast_2d(np.asarray(true, float).T).T, np.atleast_2d(np.asarray(predicted, float).T).T
    if true.shape != predicted.shape:
        raise ValueError(f"true {true.shape} and predicted {predicted.shape} differ in shape")
    error = np.abs(predicted - true) / (1.0 if scale is None else np.asarray(scale, float)[None, :])
    known = np.isfinite(error)
    counts = known.sum(1)
    mean_error = np.where(counts > 0, np.where(known, error, 0.0).sum(1) / np.maximum(counts, 1), -np.inf)
    order = np.argsort(-mean_error, kind="stable")
    return order[:min(n, int((counts > 0).sum()))]


def centred_cosine(queries: np.ndarray, gallery: np.ndarray, query_mean: np.ndarray, gallery_mean: np.ndarray) -> np.ndarray:
    """Cosine similarity after subtracting a mean embedding (the training split's) from each side.

    queries: (Q, D) or (D,); gallery: (G, D); means: (D,). Returns (Q, G) (or (G,)). Pooled embeddings share a
    large common component, so their raw cosines all sit near 1; once it is removed the scores spread out."""
    single = np.ndim(queries) == 1
    q = np.atleast_2d(np.asarray(queries, np.float64)) - np.asarray(query_mean, np.float64)
    g = np.asarray(gallery, np.float64) - np.asarray(gallery_mean, np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    scores = q @ g.T
    return scores[0] if single else scores


def phase_similarity_matrix(u_ecg: np.ndarray, u_cmr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(K, K) cosine similarity of one patient's ECG phase segments (rows) and CMR phase frames (columns).

    u_ecg, u_cmr: (K, d) projections (normalised or not); mask: (K,) bins present in both. NaN in every row and
    column of an absent bin."""
    e = np.asarray(u_ecg, np.float64)
    c = np.asarray(u_cmr, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    valid = np.asarray(mask, bool)
    return np.where(valid[:, None] & valid[None, :], e @ c.T, np.nan)


def phase_samples(rpeaks: np.ndarray, phase: float) -> np.ndarray:
    """Sample position of cardiac ``phase`` (in [0, 1)) in every complete RR interval: r_j + phase (r_j+1 - r_j),
    the phase definition of ``phases.ecg_token_phases``. rpeaks: sample indices. Returns (n_intervals,) float."""
    peaks = np.sort(np.asarray(rpeaks, np.float64))
    return peaks[:-1] + phase * np.diff(peaks)


def phase_bin_edges(rpeaks: np.ndarray, num_bins: int) -> np.ndarray:
    """(n_intervals, K + 1) sample positions of the phase-bin edges of every complete RR interval."""
    return np.stack([phase_samples(rpeaks, k / num_bins) for k in range(num_bins + 1)], axis=1) if len(rpeaks) > 1 \
        else np.zeros((0, num_bins + 1))


def nearest_point(points: np.ndarray, x: float, y: float, max_distance: float = np.inf) -> int | None:
    """Row of the point of ``points`` (N, 2) nearest to (x, y), or None when none lies within ``max_distance``
    (same units: screen pixels for hovering). NaN points are never chosen."""
    points = np.asarray(points, np.float64)
    if len(points) == 0:
        return None
    distance = np.hypot(points[:, 0] - x, points[:, 1] - y)
    distance = np.where(np.isfinite(distance), distance, np.inf)
    best = int(np.argmin(distance))
    return best if distance[best] <= max_distance else None


def probe_predictions(x: np.ndarray, phenotypes: np.ndarray, splits: np.ndarray, fraction: float = 1.0, seed: int = 0,
                      min_labels: int = 5) -> np.ndarray:
    """(N, P) predictions of every subject by notebook 03's ridge probe (``probing.fit_ridge``), fitted on
    ``fraction`` of the training labels (``probing.label_subset``, nested per seed); NaN where a phenotype has
    fewer than 3 known training labels. Train subjects' predictions are in-sample. No encoder is retrained."""
    from ptacl_core.evaluation.probing import fit_ridge, label_subset

    train = np.flatnonzero(np.asarray(splits) == "train")
    if len(train) < 3:
        raise ValueError(f"the probe needs training subjects; the cache has {len(train)}")
    subset = train[label_subset(len(train), fraction, seed, min_labels)]
    out = np.full(phenotypes.shape, np.nan)
    groups: dict[tuple[int, ...], list[int]] = {}  # phenotypes known on the same rows share one fit, as in notebook 03
    for column in range(phenotypes.shape[1]):
        rows = subset[np.isfinite(phenotypes[subset, column])]
        if len(rows) >= 3:
            groups.setdefault(tuple(rows), []).append(column)
    for rows, columns in groups.items():
        rows = np.asarray(rows)
        probe = fit_ridge(x[rows], phenotypes[np.ix_(rows, columns)])
        out[:, columns] = probe.predict(x).reshape(len(x), -1)
    return out


def map_coordinates(x: np.ndarray, how: str = "pca", max_points: int = MAP_MAX_POINTS_TSNE, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """2-D map of standardised embeddings (as notebook 05): returns (rows (M,), coordinates (M, 2)). PCA maps
    every row; t-SNE a seeded subset of at most ``max_points`` rows."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if how not in ("pca", "tsne"):
        raise ValueError(f"map method must be 'pca' or 'tsne', got {how!r}")
    rows = np.arange(len(x))
    if how == "tsne" and len(x) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
    z = (x[rows] - x[rows].mean(0)) / (x[rows].std(0) + 1e-6)
    if how == "tsne":
        return rows, TSNE(perplexity=min(30, max(2, len(z) // 4)), init="pca", random_state=seed).fit_transform(z)
    return rows, PCA(n_components=2, random_state=seed).fit_transform(z)


# --- data, read lazily -----------------------------------------------------------------------------------------

@dataclass
class ExploreData:
    """One cache, its cohort folder (for masks) and the finished runs, read on demand."""

    cache: object  # preprocessing.cache.Cache
    cohort_dir: Path | None
    runs: list  # training.runs.RunInfo
    store: Path
    device: str = "cpu"
    runs_dir: Path | None = None
    _models: dict = field(default_factory=dict, repr=False)
    _embeddings: dict = field(default_factory=dict, repr=False)
    _predictions: dict = field(default_factory=dict, repr=False)
    _manifest: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def load(cls, cohort_dir=None, cache_dir=None, preset: str = "tiny", runs_dir=None, embeddings_dir=None,
             fast: bool = False, device: str = "cpu") -> ExploreData:
        """Defaults as notebooks 03-05: the synthetic cohort, the cache notebook 01 built, ``runs/``, the
        embedding store. Runs trained on another cache are left out (as in ``Comparison.load``)."""
        from ptacl_core import paths
        from ptacl_core.evaluation.embeddings import default_store
        from ptacl_core.preprocessing.cache import Cache, default_cache_dir
        from ptacl_core.presets import preprocessing_preset
        from ptacl_core.training.runs import find_runs

        cohort_dir = Path(cohort_dir) if cohort_dir else paths.default_cohort_dir()
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(cohort_dir, preprocessing_preset(preset))
        runs_dir = Path(runs_dir) if runs_dir else paths.runs_root()
        cache = Cache.open(cache_dir)
        runs, _ = find_runs(runs_dir, preset, fast)
        runs = [r for r in runs if r.data_fingerprint in (None, cache.fingerprint)]
        store = Path(embeddings_dir) if embeddings_dir else default_store()
        return cls(cache, cohort_dir if (cohort_dir / "manifest.csv").exists() else None, runs, store, device, runs_dir)

    # subjects
    @property
    def index(self) -> pd.DataFrame:
        return self.cache.index

    @property
    def subject_ids(self) -> np.ndarray:
        return self.index.subject_id.astype(str).to_numpy()

    @property
    def splits(self) -> np.ndarray:
        return self.index.split.astype(str).to_numpy()

    @property
    def fs(self) -> float:
        return float(self.cache.config.ecg.fs)

    def position(self, subject_id: str) -> int:
        """The subject's position in the cache index; a ValueError naming an unknown id."""
        matches = np.flatnonzero(self.subject_ids == str(subject_id).strip())
        if len(matches) == 0:
            raise ValueError(f"unknown subject id {subject_id!r}: not in the cache {self.cache.folder}")
        return int(matches[0])

    def phenotypes(self) -> np.ndarray:
        """(N, len(EVALUATED)) the cache's phenotypes (NaN where unknown)."""
        return self.cache.phenotypes(EVALUATED)

    def ecg(self, subject_id: str) -> tuple[np.ndarray, np.ndarray]:
        """One subject's (12, L) preprocessed ECG (mV, ``fs`` Hz) and its R peaks (samples): one memmap row."""
        position = self.position(subject_id)
        row = int(self.index.row.iloc[position])
        return np.asarray(self.cache.ecg[row], np.float32), self.cache.rpeaks(position)

    def cine(self, subject_id: str) -> dict:
        """The mid short-axis slice over the cycle: from the cohort's own cine with its masks and LV/RV volume
        curves when the cohort folder has them (``cmr_seg`` in the manifest), else the cache's cine.

        Keys: image (T, H, W), masks (T, H, W) uint8 or None, lv_ml and rv_ml (T,) or None, frame_interval_ms,
        source ("cohort" or "cache")."""
        seg_path = self._seg_path(subject_id)
        if seg_path is not None:
            from ptacl_core.io.cmr import read_nifti_cine, read_nifti_labels
            from ptacl_core.phenotypes import label_volume_curves

            manifest = self._cohort_manifest().set_index("subject_id")
            cine = read_nifti_cine(self.cohort_dir / manifest.loc[str(subject_id), "cmr"])
            labels = read_nifti_labels(seg_path)
            if labels.shape == cine.image.shape:
                volumes = label_volume_curves(labels, cine.spacing_mm)
                middle = cine.image.shape[2] // 2
                return {"image": np.moveaxis(cine.image[:, :, middle], -1, 0).transpose(0, 2, 1),
                        "masks": np.moveaxis(labels[:, :, middle], -1, 0).transpose(0, 2, 1),
                        "lv_ml": volumes[1], "rv_ml": volumes[3], "frame_interval_ms": cine.frame_interval_ms,
                        "source": "cohort"}
        position = self.position(subject_id)
        cine = np.asarray(self.cache.cmr[int(self.index.row.iloc[position])], np.float32)
        cine = cine[len(cine) // 2] if cine.ndim == 4 else cine  # (Z, T, S, S): the mid-ventricular slice
        interval = float(self.index.frame_interval_ms.iloc[position]) if "frame_interval_ms" in self.index else np.nan
        return {"image": cine, "masks": None, "lv_ml": None, "rv_ml": None, "frame_interval_ms": interval, "source": "cache"}

    def _cohort_manifest(self) -> pd.DataFrame:
        if self._manifest is None:
            from ptacl_core.cohort_tables import read_table

            self._manifest = read_table(self.cohort_dir / "manifest.csv")
        return self._manifest

    def _seg_path(self, subject_id: str) -> Path | None:
        if self.cohort_dir is None:
            return None
        manifest = self._cohort_manifest()
        if "cmr_seg" not in manifest:
            return None
        row = manifest[manifest.subject_id == str(subject_id)]
        if row.empty or not isinstance(row.cmr_seg.iloc[0], str):
            return None
        path = self.cohort_dir / row.cmr_seg.iloc[0]
        return path if path.exists() else None

    # runs, models, embeddings, predictions
    def methods(self, contrastive_only: bool = False) -> list[str]:
        from ptacl_core.methods import METHODS, ordered

        return ordered(r.method for r in self.runs if not contrastive_only or METHODS[r.method].contrastive)

    def seeds(self, method: str) -> list[int]:
        return sorted(r.seed for r in self.runs if r.method == method)

    def run(self, method: str, seed: int):
        """The finished run of (method, seed); a FileNotFoundError naming it and the runs there are."""
        for run in self.runs:
            if run.method == method and run.seed == int(seed):
                return run
        available = ", ".join(f"{r.method} seed {r.seed}" for r in self.runs) or "none"
        raise FileNotFoundError(f"no finished run of {method!r} seed {seed} in {self.runs_dir} (finished runs: {available})")

    def model(self, method: str, seed: int):
        key = (method, int(seed))
        if key not in self._models:
            from ptacl_core.training.runs import load_model

            self._models[key] = load_model(self.run(method, seed).folder)[0].eval()
        return self._models[key]

    def num_bins(self, method: str, seed: int) -> int:
        from ptacl_core.training.runs import read_config

        return int(read_config(self.run(method, seed).folder).loss.num_bins)

    def embedding(self, method: str, seed: int, space: str = "ecg") -> np.ndarray:
        """(N, D) in cache order. space: "ecg" (pooled, what probes and ECG->ECG retrieval use), "ecg_projected"
        or "cmr_projected" (the contrastive space ECG->CMR retrieval searches)."""
        key = (method, int(seed), space)
        if key not in self._embeddings:
            from ptacl_core.evaluation.comparison import project
            from ptacl_core.evaluation.embeddings import cache_embeddings

            if space not in ("ecg", "ecg_projected", "cmr_projected"):
                raise ValueError(f"space must be ecg, ecg_projected or cmr_projected, got {space!r}")
            model = self.model(method, seed)
            modality = "cmr" if space.startswith("cmr") else "ecg"
            pooled = cache_embeddings(model, self.cache, modality, self.store, device=self.device)
            self._embeddings[key] = pooled if space == "ecg" else project(model, pooled, modality)
        return self._embeddings[key]

    def training_mean(self, method: str, seed: int, space: str = "ecg") -> np.ndarray:
        """(D,) mean embedding of the training split: what ``centred_cosine`` subtracts."""
        return self.embedding(method, seed, space)[self.splits == "train"].mean(0)

    def predictions(self, method: str, seed: int, fraction: float = 1.0) -> np.ndarray:
        """(N, len(EVALUATED)) probe predictions of every subject (``probe_predictions``), cached per setting."""
        key = (method, int(seed), float(fraction))
        if key not in self._predictions:
            self._predictions[key] = probe_predictions(self.embedding(method, seed), self.phenotypes(), self.splits,
                                                       fraction, int(seed))
        return self._predictions[key]

    def training_sd(self) -> np.ndarray:
        return np.nanstd(self.phenotypes()[self.splits == "train"], axis=0)


# --- widgets ---------------------------------------------------------------------------------------------------

def _canvas(width: float, height: float):
    """A matplotlib Figure in an ipympl canvas widget (the kernel renders, the browser shows PNG frames)."""
    from ipympl.backend_nbagg import Canvas, FigureManager
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90)
    canvas = Canvas(figure)
    FigureManager(canvas, 0)
    canvas.header_visible = False
    canvas.toolbar_position = "left"
    canvas.resizable = False
    return figure, canvas


def _redraw(figure) -> None:
    figure.canvas.draw_idle()


def _table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th style='padding:0 6px'>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:0 6px;text-align:right'>{v}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table style='font-size:12px'><tr>{head}</tr>{body}</table>"


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


class PatientViewer:
    """One subject: 12-lead ECG with R peaks, phase bins and the current frame's phase in every beat; the cine
    with a frame slider and play button, mask contours, LV/RV volume curves with a cursor; phenotypes true vs
    predicted (notebook 03's probe of a chosen run and label fraction). ``widget`` is what to display."""

    def __init__(self, data: ExploreData, subject: str | None = None, method: str | None = None, seed: int | None = None):
        import ipywidgets as w

        self.data = data
        index = data.index
        conditions = sorted(index["condition"].astype(str).unique()) if "condition" in index else []
        self.condition = w.Dropdown(options=[("any condition", "")] + [(c.replace("_", " "), c) for c in conditions],
                                    description="condition")
        self.split = w.Dropdown(options=[("any split", ""), ("train", "train"), ("val", "val"), ("test", "test")], description="split")
        self.listing = w.Dropdown(options=[("all (index order)", "all"), ("worst predicted (test)", "worst")], description="list")
        present = [p for p in EVALUATED if np.isfinite(data.phenotypes()[:, EVALUATED.index(p)]).any()]
        self.worst_by = w.Dropdown(options=[("all phenotypes (z)", "")] + [(p, p) for p in present], description="worst by")
        self.subject = w.Dropdown(options=[], description="patient")
        self.search = w.Text(placeholder="type an id, press Enter", description="id", continuous_update=False)
        methods = data.methods()
        self.method = w.Dropdown(options=methods, value=method or ("ptacl" if "ptacl" in methods else (methods or [None])[0]),
                                 description="probe of")
        self.seed = w.Dropdown(options=data.seeds(self.method.value) if methods else [], description="seed")
        if seed is not None and seed in self.seed.options:
            self.seed.value = seed
        self.fraction = w.Dropdown(options=[(f"{f:.0%} labels", f) for f in LABEL_FRACTIONS], value=1.0, description="probe")
        self.frame = w.IntSlider(min=0, max=1, value=0, description="frame", continuous_update=True)
        self.play = w.Play(min=0, max=1, interval=150, description="play")
        w.jslink((self.play, "value"), (self.frame, "value"))
        self.frame_label = w.HTML()
        self.readout = w.HTML()
        self.status = w.HTML()
        self._build_figures()
        self.subject_id: str | None = None
        self._cine: dict | None = None
        self._refresh_options()
        for control in (self.condition, self.split, self.listing, self.worst_by):
            control.observe(lambda _: self._refresh_options(), "value")
        self.subject.observe(lambda change: change["new"] and change["new"] != self.subject_id and self.show(change["new"]), "value")
        self.search.observe(lambda change: change["new"].strip() and self._search(), "value")
        self.method.observe(self._method_changed, "value")
        self.seed.observe(lambda _: self._update_readout(), "value")
        self.fraction.observe(lambda _: (self._update_readout(), self._refresh_options()), "value")
        self.frame.observe(lambda change: self.set_frame(change["new"]), "value")
        first = subject or (self.subject.options[0] if self.subject.options else None)
        if first is not None:
            self.show(first)
        self.widget = w.VBox([
            w.HBox([self.condition, self.split, self.listing, self.worst_by]),
            w.HBox([self.subject, self.search, self.method, self.seed, self.fraction]),
            self.status, self.ecg_canvas,
            w.HBox([self.play, self.frame, self.frame_label]),
            w.HBox([self.cine_canvas, self.readout]),
        ])

    def _build_figures(self) -> None:
        from matplotlib.collections import LineCollection, PolyCollection

        self.ecg_figure, self.ecg_canvas = _canvas(11.0, 4.6)
        axis = self.ecg_figure.add_subplot()
        self.ecg_axis = axis
        self.bin_patches = PolyCollection([], facecolors="#4C72B0", alpha=0.07, edgecolors="none")
        self.current_bin = PolyCollection([], facecolors="#DD8452", alpha=0.25, edgecolors="none")
        axis.add_collection(self.bin_patches)
        axis.add_collection(self.current_bin)
        self.lead_lines = [axis.plot([], [], lw=0.6, color="k")[0] for _ in LEAD_NAMES]
        self.rpeak_marks = axis.plot([], [], "v", color="#C44E52", ms=4)[0]
        self.ecg_cursors = LineCollection([], colors="#DD8452", linewidths=1.2)
        axis.add_collection(self.ecg_cursors)
        axis.set_yticks(-3.0 * np.arange(12), LEAD_NAMES)
        axis.set_ylim(-3.0 * 11 - 2.5, 2.5)
        axis.set_xlabel("time (s)")
        self.ecg_figure.tight_layout()

        self.cine_figure, self.cine_canvas = _canvas(7.5, 3.4)
        image_axis, volume_axis = self.cine_figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
        self.image_axis, self.volume_axis = image_axis, volume_axis
        self.cine_image = image_axis.imshow(np.zeros((2, 2)), cmap="gray")
        self.mask_image = image_axis.imshow(np.zeros((2, 2, 4)))
        image_axis.set_axis_off()
        self.lv_line = volume_axis.plot([], [], color="#e41a1c", label="LV cavity")[0]
        self.rv_line = volume_axis.plot([], [], color="#377eb8", label="RV cavity")[0]
        self.volume_cursor = volume_axis.axvline(0, color="#DD8452", lw=1.2)
        volume_axis.set_xlabel("time after R (ms)")
        volume_axis.set_ylabel("volume (mL)")
        volume_axis.legend(fontsize=7, loc="upper right")
        self.cine_figure.tight_layout()

    # selection
    def _refresh_options(self) -> None:
        data = self.data
        if self.listing.value == "worst":
            ids = self.worst_ids()
            if self.condition.value:
                allowed = set(select_subjects(data.index, self.condition.value, "test", limit=len(data.index)))
                ids = [s for s in ids if s in allowed]
        else:
            ids = select_subjects(data.index, self.condition.value or None, self.split.value or None)
        current = self.subject.value
        self.subject.options = ids
        if current in ids:
            self.subject.value = current
        self.status.value = "" if ids else "<span style='color:#C44E52'>no subject matches these filters</span>"

    def worst_ids(self, n: int = MAX_OPTIONS) -> list[str]:
        """Test subjects worst predicted by the chosen run's probe (``worst_predicted``)."""
        if self.method.value is None or self.seed.value is None:
            return []
        data = self.data
        test = np.flatnonzero(data.splits == "test")
        predicted = data.predictions(self.method.value, self.seed.value, self.fraction.value)[test]
        true = data.phenotypes()[test]
        if self.worst_by.value:
            column = EVALUATED.index(self.worst_by.value)
            rows = worst_predicted(true[:, column], predicted[:, column], n=n)
        else:
            rows = worst_predicted(true, predicted, data.training_sd(), n=n)
        return data.subject_ids[test[rows]].tolist()

    def _search(self) -> None:
        try:
            self.show(self.search.value.strip())
        except ValueError as error:
            self.status.value = f"<span style='color:#C44E52'>{error}</span>"

    def _method_changed(self, change) -> None:
        self.seed.options = self.data.seeds(change["new"])
        self._update_readout()

    def show(self, subject_id: str) -> None:
        """Display one subject (a ValueError naming an unknown id)."""
        data = self.data
        position = data.position(subject_id)
        self.subject_id = str(subject_id)
        if self.subject_id not in self.subject.options:  # e.g. opened from the map: list it first
            self.subject.options = [self.subject_id, *self.subject.options[:MAX_OPTIONS - 1]]
        self.subject.value = self.subject_id
        self.status.value = ""
        ecg, rpeaks = data.ecg(subject_id)
        self._rpeaks = rpeaks
        t = np.arange(ecg.shape[1]) / data.fs
        for lead, line in enumerate(self.lead_lines):
            line.set_data(t, ecg[lead] - 3.0 * lead)
        self.rpeak_marks.set_data(rpeaks / data.fs, np.full(len(rpeaks), 1.8))
        self.ecg_axis.set_xlim(0, t[-1])
        self._num_bins = data.num_bins(self.method.value, self.seed.value) if self.method.value else 8
        edges = phase_bin_edges(rpeaks, self._num_bins) / data.fs
        self._bin_edges = edges
        shaded = [[(a, -40), (b, -40), (b, 3), (a, 3)] for beat in edges for a, b in zip(beat[0:-1:2], beat[1::2], strict=False)]
        self.bin_patches.set_verts(shaded)
        self._cine = data.cine(subject_id)
        image = self._cine["image"]
        self.cine_image.set_data(image[0])
        self.cine_image.set_clim(float(np.percentile(image, 1)), float(np.percentile(image, 99.5)))
        self.cine_image.set_extent((-0.5, image.shape[2] - 0.5, image.shape[1] - 0.5, -0.5))
        self.mask_image.set_extent(self.cine_image.get_extent())
        n_frames = image.shape[0]
        times = np.arange(n_frames) * self._cine["frame_interval_ms"]
        if self._cine["lv_ml"] is not None:
            self.lv_line.set_data(times, self._cine["lv_ml"])
            self.rv_line.set_data(times, self._cine["rv_ml"])
            self.volume_axis.set_xlim(0, times[-1])
            both = np.concatenate([self._cine["lv_ml"], self._cine["rv_ml"]])
            self.volume_axis.set_ylim(0, both.max() * 1.1)
            self.volume_axis.set_title("LV / RV volume from the masks", fontsize=9)
        else:
            self.lv_line.set_data([], [])
            self.rv_line.set_data([], [])
            self.volume_axis.set_title("no masks in the cohort folder: no volume curve", fontsize=9)
        condition = data.index["condition"].iloc[position] if "condition" in data.index else "unknown"
        self.ecg_axis.set_title(f"{subject_id} · {str(condition).replace('_', ' ')} · {data.splits[position]} split · "
                                f"K = {self._num_bins} phase bins per RR (shaded alternately)", fontsize=10)
        self.image_axis.set_title(f"mid short-axis slice ({self._cine['source']})", fontsize=9)
        self.frame.max = self.play.max = n_frames - 1
        self.ecg_figure.tight_layout()  # room for this subject's titles
        self.cine_figure.tight_layout()
        self._update_readout()
        if self.frame.value != 0:
            self.frame.value = 0  # set_frame follows through the observer
        else:
            self.set_frame(0)
        _redraw(self.ecg_figure)

    def set_frame(self, frame: int) -> None:
        """Move the cine, the volume cursor and the ECG cursors to ``frame`` (phase frame / T in every beat)."""
        if self._cine is None:
            return
        image, masks = self._cine["image"], self._cine["masks"]
        frame = int(np.clip(frame, 0, len(image) - 1))
        phase = frame / len(image)
        self.cine_image.set_data(image[frame])
        overlay = np.zeros((*image.shape[1:], 4))
        if masks is not None:
            from matplotlib.colors import to_rgb

            from ptacl_core.plotting import LABEL_COLOURS

            for label, colour in LABEL_COLOURS.items():
                inside = masks[frame] == label
                overlay[inside] = (*to_rgb(colour), 0.35)
        self.mask_image.set_data(overlay)
        time_ms = frame * self._cine["frame_interval_ms"]
        self.volume_cursor.set_xdata([time_ms, time_ms])
        cursor_s = phase_samples(self._rpeaks, phase) / self.data.fs
        self.ecg_cursors.set_segments([[(c, -40), (c, 3)] for c in cursor_s])
        current = int(phase * self._num_bins)
        self.current_bin.set_verts([[(b[current], -40), (b[current + 1], -40), (b[current + 1], 3), (b[current], 3)]
                                    for b in self._bin_edges])
        self.frame_label.value = (f"frame {frame} of {len(image)} · phase {phase:.2f} · bin {current + 1}/{self._num_bins}"
                                  f" · {_fmt(time_ms, 0)} ms after R")
        _redraw(self.ecg_figure)
        _redraw(self.cine_figure)

    def _update_readout(self) -> None:
        if self.subject_id is None:
            return
        data = self.data
        position = data.position(self.subject_id)
        true = data.phenotypes()[position]
        method, seed = self.method.value, self.seed.value
        predicted = data.predictions(method, seed, self.fraction.value)[position] if method is not None and seed is not None \
            else np.full(len(EVALUATED), np.nan)
        rows = [(name.replace("_", " "), UNITS[name], _fmt(true[i]), _fmt(predicted[i]), _fmt(predicted[i] - true[i]))
                for i, name in enumerate(EVALUATED) if np.isfinite(true[i]) or np.isfinite(predicted[i])]
        from ptacl_core.methods import label

        note = ("in-sample: a training subject of the probe" if data.splits[position] == "train" else
                f"held out ({data.splits[position]} split)")
        source = f"{label(method)} seed {seed}, {self.fraction.value:.0%} of training labels" if method else "no trained run"
        self.readout.value = (f"<b>{self.subject_id}</b>: phenotypes, CMR truth vs predicted from the ECG "
                              f"({source}; {note})" + _table(rows, ("phenotype", "unit", "true", "predicted", "error")))


class RetrievalExplorer:
    """A query patient's top-k neighbours (ECG->ECG in the pooled ECG embedding, ECG->CMR in the contrastive
    projection space) among a split's subjects: rank (by raw cosine as notebook 04 scores, or by the centred
    cosine), the centred score (``centred_cosine``, training mean removed) beside the raw cosine, each
    neighbour's lead II, mid-slice ED frame and phenotypes, and whether it is relevant (among the query's
    ``relevance k`` nearest in z-scored phenotype space, METHOD.md §5)."""

    def __init__(self, data: ExploreData, query: str | None = None, k: int = 5, split: str = "test"):
        import ipywidgets as w

        if not data.runs:
            raise FileNotFoundError(f"no finished runs in {data.runs_dir}: the retrieval explorer needs trained encoders")
        self.data, self.split_name = data, split
        self.gallery_rows = np.flatnonzero(data.splits == split)
        ids = data.subject_ids[self.gallery_rows]
        self.query = w.Dropdown(options=ids[:MAX_OPTIONS].tolist(), description="query")
        methods = data.methods()
        self.method = w.Dropdown(options=methods, value="ptacl" if "ptacl" in methods else methods[0], description="method")
        self.seed = w.Dropdown(options=data.seeds(self.method.value), description="seed")
        self.direction = w.ToggleButtons(options=["ECG→ECG", "ECG→CMR"], description="direction")
        self.rank_by = w.ToggleButtons(options=[("cosine (as notebook 04)", "cosine"), ("centred cosine", "centred")],
                                       description="rank by")
        self.k = w.IntSlider(min=1, max=min(8, len(self.gallery_rows) - 1), value=min(k, len(self.gallery_rows) - 1),
                             description="top k")
        self.relevance_k = w.IntSlider(min=1, max=min(50, len(self.gallery_rows) - 1), value=min(10, len(self.gallery_rows) - 1),
                                       description="relevance k")
        self.table = w.HTML()
        self.figure, self.canvas = _canvas(11.0, 3.6)
        self.method.observe(lambda change: setattr(self.seed, "options", data.seeds(change["new"])), "value")
        for control in (self.query, self.seed, self.direction, self.rank_by, self.k, self.relevance_k):
            control.observe(lambda _: self.update(), "value")
        if query is not None:
            self.set_query(query)
        self.result: pd.DataFrame | None = None
        self.update()
        self.widget = w.VBox([w.HBox([self.query, self.method, self.seed]), w.HBox([self.direction, self.rank_by]),
                              w.HBox([self.k, self.relevance_k]), self.canvas, self.table])

    def set_query(self, subject_id: str) -> None:
        position = self.data.position(subject_id)
        if self.data.splits[position] != self.split_name:
            raise ValueError(f"query {subject_id!r} is in the {self.data.splits[position]} split; the gallery is the "
                             f"{self.split_name} split")
        if subject_id not in self.query.options:
            self.query.options = [subject_id, *self.query.options[:MAX_OPTIONS - 1]]
        self.query.value = subject_id

    def neighbours(self) -> pd.DataFrame:
        """The current query's top k: rank, subject_id, cosine, centred, relevant, and the volume phenotypes."""
        from ptacl_core.evaluation.retrieval import relevant_sets, topk, zscore_phenotypes

        data, rows = self.data, self.gallery_rows
        method, seed = self.method.value, self.seed.value
        if self.direction.value == "ECG→CMR":
            from ptacl_core.methods import METHODS

            if not METHODS[method].contrastive:
                raise ValueError(f"{method!r} has no ECG-CMR projection space: ECG→CMR needs a contrastive method")
            query_space, gallery_space = "ecg_projected", "cmr_projected"
        else:
            query_space = gallery_space = "ecg"
        queries, gallery = data.embedding(method, seed, query_space)[rows], data.embedding(method, seed, gallery_space)[rows]
        q = int(np.flatnonzero(data.subject_ids[rows] == self.query.value)[0])
        query_mean, gallery_mean = data.training_mean(method, seed, query_space), data.training_mean(method, seed, gallery_space)
        exclude = np.array([q])
        if self.rank_by.value == "centred":
            found, _ = topk(queries[q:q + 1] - query_mean, gallery - gallery_mean, self.k.value, exclude=exclude)
        else:
            found, _ = topk(queries[q:q + 1], gallery, self.k.value, exclude=exclude)
        found = found[0]
        raw = queries[q] @ gallery[found].T / (np.linalg.norm(queries[q]) * np.linalg.norm(gallery[found], axis=1))
        centred = centred_cosine(queries[q], gallery[found], query_mean, gallery_mean)
        volumes = data.cache.phenotypes(PHENOTYPES)
        train = np.flatnonzero(data.splits == "train")
        z = zscore_phenotypes(volumes[rows], volumes[train])
        relevant = relevant_sets(z[q:q + 1], z, exclude, self.relevance_k.value)[0]
        table = pd.DataFrame({"rank": np.arange(1, len(found) + 1), "subject_id": data.subject_ids[rows[found]],
                              "cosine": raw, "centred": centred, "relevant": np.isin(found, relevant)})
        for name in ("LVEF_pct", "LVEDV_mL", "LVM_g"):
            table[name] = volumes[rows[found], PHENOTYPES.index(name)]
        if "condition" in data.index:
            table["condition"] = data.index["condition"].astype(str).to_numpy()[rows[found]]
        return table

    def update(self) -> None:
        if self.query.value is None or self.seed.value is None:
            return
        try:
            self.result = self.neighbours()
        except ValueError as error:
            self.table.value = f"<span style='color:#C44E52'>{error}</span>"
            return
        data, result = self.data, self.result
        self.figure.clear()
        columns = 1 + len(result)
        grid = self.figure.add_gridspec(2, columns, height_ratios=[1, 2])
        for column, subject in enumerate([self.query.value, *result.subject_id]):
            ecg, _ = data.ecg(subject)
            axis = self.figure.add_subplot(grid[0, column])
            seconds = min(ecg.shape[1] / data.fs, 2.5)
            samples = int(seconds * data.fs)
            axis.plot(np.arange(samples) / data.fs, ecg[1, :samples], lw=0.6, color="k")
            axis.set_xticks([])
            axis.set_yticks([])
            image = data.cine(subject)
            ed = image["image"][0]
            axis = self.figure.add_subplot(grid[1, column])
            axis.imshow(ed, cmap="gray")
            axis.set_axis_off()
            if column == 0:
                axis.set_title(f"query {subject}\nLVEF {_fmt(data.phenotypes()[data.position(subject), EVALUATED.index('LVEF_pct')], 0)}%",
                               fontsize=8)
            else:
                row = result.iloc[column - 1]
                mark = "relevant" if row.relevant else ""
                axis.set_title(f"#{row['rank']} {subject}\ncentred {row.centred:+.2f} (cos {row.cosine:.3f})\n"
                               f"LVEF {_fmt(row.LVEF_pct, 0)}% {mark}", fontsize=8)
        self.figure.suptitle(f"{self.direction.value}, {self.method.value} seed {self.seed.value}: lead II (2.5 s) and ED "
                             f"frame; gallery = {self.split_name} split", fontsize=9)
        self.figure.tight_layout()
        _redraw(self.figure)
        shown = result.assign(cosine=result.cosine.map("{:.4f}".format), centred=result.centred.map("{:+.3f}".format))
        precision = result.relevant.mean()
        self.table.value = (f"precision@{len(result)} for this query: {precision:.2f} (relevant = among its "
                            f"{self.relevance_k.value} nearest in z-scored phenotype space)" + shown.to_html(index=False, float_format="%.1f"))


class _PointPicker:
    """Hover a scatter for the subject under the pointer; click to open it in a PatientViewer."""

    def _connect(self, figure, axis, label_widget) -> None:
        self._axis, self._hover = axis, label_widget
        figure.canvas.mpl_connect("motion_notify_event", self._on_move)
        figure.canvas.mpl_connect("button_press_event", self._on_click)

    def _point_at(self, x_pixels: float, y_pixels: float) -> int | None:
        if self.points is None or len(self.points) == 0:
            return None
        screen = self._axis.transData.transform(self.points)
        return nearest_point(screen, x_pixels, y_pixels, HOVER_PIXELS)

    def _on_move(self, event) -> None:
        if event.inaxes is not self._axis:
            return
        found = self._point_at(event.x, event.y)
        self._hover.value = self.describe(found) if found is not None else ""

    def _on_click(self, event) -> None:
        if event.inaxes is not self._axis or self.viewer is None:
            return
        found = self._point_at(event.x, event.y)
        if found is not None:
            self.viewer.show(self.point_ids[found])

    def open_point(self, row: int) -> None:
        """What a click on point ``row`` does: open its subject in the linked viewer."""
        if self.viewer is None:
            raise ValueError("no patient viewer linked: build this widget with viewer=PatientViewer(...)")
        self.viewer.show(self.point_ids[row])


class EmbeddingMap(_PointPicker):
    """The 2-D map of one run's ECG embeddings (PCA, or t-SNE on a subset), coloured by a phenotype or the
    condition; hover for the subject, click to open it in ``viewer``."""

    def __init__(self, data: ExploreData, viewer: PatientViewer | None = None, how: str = "pca"):
        import ipywidgets as w

        if not data.runs:
            raise FileNotFoundError(f"no finished runs in {data.runs_dir}: the embedding map needs trained encoders")
        self.data, self.viewer, self.how = data, viewer, how
        methods = data.methods()
        self.method = w.Dropdown(options=methods, value="ptacl" if "ptacl" in methods else methods[0], description="method")
        self.seed = w.Dropdown(options=data.seeds(self.method.value), description="seed")
        colours = (["condition"] if "condition" in data.index else []) + [p for p in EVALUATED
                                                                        if np.isfinite(data.phenotypes()[:, EVALUATED.index(p)]).any()]
        self.colour_by = w.Dropdown(options=colours, value="LVEF_pct" if "LVEF_pct" in colours else colours[0], description="colour")
        self.hover = w.HTML()
        self.figure, self.canvas = _canvas(6.5, 5.0)
        self.axis = self.figure.add_subplot()
        self.points, self.point_ids = None, np.array([])
        self._connect(self.figure, self.axis, self.hover)
        self.method.observe(lambda change: setattr(self.seed, "options", data.seeds(change["new"])), "value")
        self.seed.observe(lambda _: self.update(), "value")
        self.colour_by.observe(lambda _: self.update(), "value")
        self.update()
        self.widget = w.VBox([w.HBox([self.method, self.seed, self.colour_by]), self.hover, self.canvas])

    def describe(self, row: int) -> str:
        data = self.data
        position = self.rows[row]
        value = (data.index["condition"].astype(str).iloc[position] if self.colour_by.value == "condition" else
                 f"{self.colour_by.value} {_fmt(data.phenotypes()[position, EVALUATED.index(self.colour_by.value)])}")
        return f"<b>{self.point_ids[row]}</b> · {data.splits[position]} · {value} (click: open in the patient viewer)"

    def update(self) -> None:
        from ptacl_core.plotting import CONDITION_COLOURS

        data = self.data
        self.rows, self.points = map_coordinates(data.embedding(self.method.value, self.seed.value), self.how)
        self.point_ids = data.subject_ids[self.rows]
        self.axis.clear()
        if self.colour_by.value == "condition":
            conditions = data.index["condition"].astype(str).to_numpy()[self.rows]
            for condition in sorted(set(conditions)):
                chosen = conditions == condition
                self.axis.scatter(*self.points[chosen].T, s=6, color=CONDITION_COLOURS.get(condition, "#777777"),
                                  label=condition.replace("_", " "), linewidths=0)
            self.axis.legend(fontsize=7, markerscale=2)
        else:
            values = data.phenotypes()[self.rows, EVALUATED.index(self.colour_by.value)]
            scatter = self.axis.scatter(*self.points.T, s=6, c=values, cmap="viridis", linewidths=0)
            if not hasattr(self, "_colourbar"):
                self._colourbar = self.figure.colorbar(scatter, ax=self.axis)
            else:
                self._colourbar.update_normal(scatter)
            self._colourbar.set_label(f"{self.colour_by.value} ({UNITS[self.colour_by.value]})")
        self.axis.set_title(f"{self.method.value} seed {self.seed.value}: ECG embedding ({self.how.upper()}, "
                            f"{len(self.rows)} subjects)", fontsize=9)
        self.axis.set_xticks([])
        self.axis.set_yticks([])
        _redraw(self.figure)


class PredictionScatter(_PointPicker):
    """Predicted (notebook 03's probe) against true on the test split for a run, phenotype and label fraction;
    hover for the subject and condition, click to open it in ``viewer``."""

    def __init__(self, data: ExploreData, viewer: PatientViewer | None = None):
        import ipywidgets as w

        if not data.runs:
            raise FileNotFoundError(f"no finished runs in {data.runs_dir}: predictions need trained encoders")
        self.data, self.viewer = data, viewer
        methods = data.methods()
        self.method = w.Dropdown(options=methods, value="ptacl" if "ptacl" in methods else methods[0], description="method")
        self.seed = w.Dropdown(options=data.seeds(self.method.value), description="seed")
        present = [p for p in EVALUATED if np.isfinite(data.phenotypes()[:, EVALUATED.index(p)]).any()]
        self.phenotype = w.Dropdown(options=present, value="LVEF_pct" if "LVEF_pct" in present else present[0],
                                    description="phenotype")
        self.fraction = w.Dropdown(options=[(f"{f:.0%} labels", f) for f in LABEL_FRACTIONS], value=1.0, description="probe")
        self.hover = w.HTML()
        self.figure, self.canvas = _canvas(5.5, 4.6)
        self.axis = self.figure.add_subplot()
        self.points, self.point_ids = None, np.array([])
        self._connect(self.figure, self.axis, self.hover)
        self.method.observe(lambda change: setattr(self.seed, "options", data.seeds(change["new"])), "value")
        for control in (self.seed, self.phenotype, self.fraction):
            control.observe(lambda _: self.update(), "value")
        self.update()
        self.widget = w.VBox([w.HBox([self.method, self.seed, self.phenotype, self.fraction]), self.hover, self.canvas])

    def describe(self, row: int) -> str:
        data, position = self.data, self.rows[row]
        condition = data.index["condition"].astype(str).iloc[position] if "condition" in data.index else "unknown"
        true, predicted = self.points[row]
        return (f"<b>{self.point_ids[row]}</b> · {condition.replace('_', ' ')} · true {_fmt(true)}, predicted "
                f"{_fmt(predicted)} {UNITS[self.phenotype.value]} (click: open in the patient viewer)")

    def update(self) -> None:
        from ptacl_core.plotting import CONDITION_COLOURS

        data = self.data
        column = EVALUATED.index(self.phenotype.value)
        test = np.flatnonzero(data.splits == "test")
        true = data.phenotypes()[test, column]
        predicted = data.predictions(self.method.value, self.seed.value, self.fraction.value)[test, column]
        known = np.isfinite(true) & np.isfinite(predicted)
        self.rows, self.points = test[known], np.stack([true[known], predicted[known]], 1)
        self.point_ids = data.subject_ids[self.rows]
        conditions = data.index["condition"].astype(str).to_numpy()[self.rows] if "condition" in data.index else \
            np.full(len(self.rows), "unknown")
        self.axis.clear()
        self.axis.scatter(*self.points.T, s=12, c=[CONDITION_COLOURS.get(c, "#777777") for c in conditions], linewidths=0)
        if len(self.points):
            low, high = np.nanmin(self.points), np.nanmax(self.points)
            self.axis.plot([low, high], [low, high], "--", color="0.5", lw=0.8)
            residual = self.points[:, 1] - self.points[:, 0]
            r2 = 1 - (residual ** 2).sum() / max(((self.points[:, 0] - self.points[:, 0].mean()) ** 2).sum(), 1e-12)
            self.axis.set_title(f"{self.method.value} seed {self.seed.value}, {self.fraction.value:.0%} labels: "
                                f"test R² {r2:.2f}, MAE {np.abs(residual).mean():.1f}", fontsize=9)
        unit = UNITS[self.phenotype.value]
        self.axis.set_xlabel(f"CMR {self.phenotype.value} ({unit})")
        self.axis.set_ylabel(f"predicted from ECG ({unit})")
        _redraw(self.figure)


class PhaseSimilarityBrowser:
    """One patient's K x K cosine similarity of projected ECG phase segments (rows) and CMR phase frames
    (columns) for each chosen method: a bright diagonal is what the local loss asks for."""

    def __init__(self, data: ExploreData, subject: str | None = None):
        import ipywidgets as w

        methods = data.methods(contrastive_only=True)
        if not methods:
            raise FileNotFoundError(f"no finished contrastive runs in {data.runs_dir}: nothing has phase projections")
        self.data = data
        test_ids = select_subjects(data.index, split="test")
        self.subject = w.Dropdown(options=test_ids, value=subject if subject in test_ids else (test_ids or [None])[0],
                                  description="patient")
        self.methods = w.SelectMultiple(options=methods, value=tuple(methods[:3]), description="methods", rows=min(4, len(methods)))
        self.seed = w.IntText(value=min(data.seeds(methods[0])), description="seed")
        self.summary = w.HTML()
        self.figure, self.canvas = _canvas(10.0, 3.4)
        for control in (self.subject, self.methods, self.seed):
            control.observe(lambda _: self.update(), "value")
        self.matrices: dict[str, np.ndarray] = {}
        self.update()
        self.widget = w.VBox([w.HBox([self.subject, self.methods, self.seed]), self.canvas, self.summary])

    def matrix(self, method: str, seed: int, subject_id: str) -> np.ndarray:
        import torch

        from ptacl_core.dataset import CacheDataset

        data = self.data
        model = data.model(method, seed)
        batch = CacheDataset(data.cache, None).batch([data.position(subject_id)])
        with torch.no_grad():
            features = model.phase_embeddings(batch, data.fs, data.num_bins(method, seed))
        return phase_similarity_matrix(features.u_ecg[0].numpy(), features.u_cmr[0].numpy(), features.mask[0].numpy())

    def update(self) -> None:
        if self.subject.value is None:
            return
        self.figure.clear()
        chosen = list(self.methods.value)
        self.matrices, lines = {}, []
        for column, method in enumerate(chosen):
            axis = self.figure.add_subplot(1, max(len(chosen), 1), column + 1)
            try:
                matrix = self.matrix(method, self.seed.value, self.subject.value)
            except FileNotFoundError as error:
                axis.set_axis_off()
                axis.set_title(f"{method}: no run", fontsize=8)
                lines.append(str(error))
                continue
            self.matrices[method] = matrix
            shown = axis.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
            axis.set_xlabel("CMR phase bin")
            axis.set_ylabel("ECG phase bin")
            diagonal = np.nanmean(np.diag(matrix))
            off = np.nanmean(matrix[~np.eye(len(matrix), dtype=bool)])
            axis.set_title(f"{method} seed {self.seed.value}\nsame phase {diagonal:+.2f}, other {off:+.2f}", fontsize=8)
            lines.append(f"{method}: same-phase mean {diagonal:+.3f}, other-phase mean {off:+.3f}")
        if self.matrices:
            self.figure.colorbar(shown, ax=self.figure.axes, shrink=0.8, label="cosine")
        self.summary.value = f"<b>{self.subject.value}</b>: " + "; ".join(lines)
        _redraw(self.figure)
