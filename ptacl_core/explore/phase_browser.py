"""``PhaseSimilarityBrowser``: one patient's K x K similarity of projected ECG phase segments and CMR phase
frames, for each chosen contrastive method and one of their seeds. Phase bins are counted from 1 (bin 1 starts at
the R peak), as the patient viewer's frame label counts them."""

from __future__ import annotations

import numpy as np

from ptacl_core.explore.compute import phase_similarity_matrix, select_subjects
from ptacl_core.explore.controls import LITERAL_TEXT, canvas, html_text, id_search, list_first, locked, redraw
from ptacl_core.explore.data import ExploreData
from ptacl_core.methods import label


class PhaseSimilarityBrowser:
    """One patient's K x K cosine similarity of projected ECG phase segments (rows) and CMR phase frames
    (columns) for each chosen method: a bright diagonal is what the local loss asks for. Patients: the first test
    subjects in the dropdown, any subject by id."""

    def __init__(self, data: ExploreData, subject: str | None = None):
        import ipywidgets as w  # lazy: widgets load only when a widget is shown

        methods = data.methods(contrastive_only=True)
        if not methods:
            raise FileNotFoundError(f"no finished contrastive runs in {data.runs_dir}: nothing has phase projections")
        self.data = data
        test_ids = select_subjects(data.index, split="test")
        self.subject = w.Dropdown(options=test_ids, value=(test_ids or [None])[0], description="patient")
        self.summary = w.HTML()
        self.search = id_search(self.show, self.summary)
        self.methods = w.SelectMultiple(options=methods, value=tuple(methods[:3]), description="methods",
                                        rows=min(4, len(methods)))
        self.seed = w.Dropdown(options=self.seed_options(), description="seed")
        self.figure, self.canvas = canvas(10.0, 3.6, layout="constrained")
        self.matrices: dict[str, np.ndarray] = {}
        self._updating_seeds = False
        if subject is not None:
            self.show(subject)
        for control in (self.subject, self.seed):
            control.observe(lambda _: self._updating_seeds or self.update(), "value")
        self.methods.observe(lambda _: self._methods_changed(), "value")
        self.update()
        self.widget = w.VBox([w.HBox([self.subject, self.search, self.methods, self.seed]), self.canvas,
                              self.summary])

    def seed_options(self) -> list[int]:
        """The seeds with a finished run of at least one chosen method (a method without that seed says so)."""
        return sorted({seed for method in self.methods.value for seed in self.data.seeds(method)})

    def _methods_changed(self) -> None:
        previous = self.seed.value
        self._updating_seeds = True
        try:
            options = self.seed_options()
            self.seed.options = options
            if previous in options:
                self.seed.value = previous
        finally:
            self._updating_seeds = False
        self.update()

    def show(self, subject_id: str) -> None:
        """Browse ``subject_id`` (any subject of the cache, its id as stored or typed with other surrounding
        spaces, ``ExploreData.resolve``; a ValueError naming an unknown id)."""
        list_first(self.subject, self.data.resolve(subject_id))

    def matrix(self, method: str, seed: int, subject_id: str) -> np.ndarray:
        import torch  # lazy: torch only for the similarity; the explorer imports without it

        data = self.data
        model = data.model(method, seed)
        with torch.no_grad():
            features = model.phase_embeddings(data.batch(subject_id), data.fs, data.num_bins(method, seed))
        return phase_similarity_matrix(features.u_ecg[0].numpy(), features.u_cmr[0].numpy(),
                                       features.mask[0].numpy())

    def update(self) -> None:
        if self.subject.value is None:
            return
        chosen, seed = list(self.methods.value), self.seed.value
        matrices, missing = {}, []
        for method in chosen:
            if seed is None or seed not in self.data.seeds(method):
                missing.append(method)
                continue
            matrices[method] = self.matrix(method, seed, self.subject.value)
        with locked(self.figure):
            self.figure.clear()
            self.matrices, lines = matrices, []
            for column, method in enumerate(chosen):
                axis = self.figure.add_subplot(1, max(len(chosen), 1), column + 1)
                if method not in matrices:
                    axis.set_axis_off()
                    axis.set_title(f"{label(method)}: no run of seed {seed}", fontsize=8, **LITERAL_TEXT)
                    continue
                matrix = matrices[method]
                shown = axis.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
                ticks = np.arange(len(matrix))
                every = max(1, len(matrix) // 8)  # at most about 8 tick labels
                axis.set_xticks(ticks[::every], [str(k + 1) for k in ticks[::every]])
                axis.set_yticks(ticks[::every], [str(k + 1) for k in ticks[::every]])
                axis.set_xlabel("CMR phase bin")
                axis.set_ylabel("ECG phase bin")
                diagonal = np.nanmean(np.diag(matrix))
                off = np.nanmean(matrix[~np.eye(len(matrix), dtype=bool)])
                axis.set_title(f"{label(method)} seed {seed}\nsame phase {diagonal:+.2f}, other {off:+.2f}",
                               fontsize=8, **LITERAL_TEXT)
                lines.append(f"{method}: same-phase mean {diagonal:+.3f}, other-phase mean {off:+.3f}")
            if missing:
                lines.append(f"no run of seed {seed} for {', '.join(missing)} in {self.data.runs_dir}")
            if self.matrices:
                self.figure.colorbar(shown, ax=self.figure.axes, shrink=0.8, label="cosine")
            redraw(self.figure)
        self.summary.value = (f"<b>{html_text(self.subject.value)}</b>: " + html_text("; ".join(lines))
                              + "<br><i>bins counted from 1: bin 1 starts at the R peak</i>")
