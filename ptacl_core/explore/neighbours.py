"""``RetrievalExplorer``: a query patient's top-k neighbours, ranked as notebook 04 ranks them, with the centred
score beside the raw cosine, each neighbour's lead II, ED frame and phenotypes, and its relevance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ptacl_core.evaluation.tables import DIRECTIONS, ECG_TO_CMR
from ptacl_core.explore.compute import MAX_OPTIONS, centred_cosine
from ptacl_core.explore.controls import (
    LITERAL_TEXT,
    RunPicker,
    canvas,
    error_html,
    fmt,
    id_search,
    list_first,
    locked,
    redraw,
)
from ptacl_core.explore.data import ExploreData
from ptacl_core.methods import METHODS
from ptacl_core.phenotypes import EVALUATED, PHENOTYPES, axis_label, display_name, unit
from ptacl_core.plotting.style import condition_name

CAPTION_FONT = 7.5  # neighbour captions: four short lines each, so that 9 columns (top k = 8) stay apart


class RetrievalExplorer:
    """A query patient's top-k neighbours (ECG->ECG in the pooled ECG embedding, ECG->CMR in the contrastive
    projection space) among a split's subjects with a known LVEF (notebook 04's gallery): rank (by raw cosine as
    notebook 04 scores, or by the centred cosine), the centred score (``centred_cosine``, training mean removed)
    beside the raw cosine, each neighbour's lead II, ED frame (the cache's) and phenotypes, and whether it is
    relevant (among the query's ``relevance k`` nearest in z-scored phenotype space, METHOD.md §5; default
    notebook 04's 10). Queries: the first ``MAX_OPTIONS`` of the gallery in the dropdown, any other by id."""

    def __init__(self, data: ExploreData, query: str | None = None, k: int = 5, split: str = "test"):
        import ipywidgets as w  # lazy: widgets load only when the explorer is shown

        from ptacl_core.evaluation.retrieval import N_RELEVANT  # lazy: loads torch; the explorer imports without it

        if not data.runs:
            raise FileNotFoundError(f"no finished runs in {data.runs_dir}: the retrieval explorer needs trained "
                                    "encoders")
        self.data, self.split_name = data, split
        lvef = data.volumes()[:, PHENOTYPES.index("LVEF_pct")]
        self.gallery_rows = np.flatnonzero((data.splits == split) & np.isfinite(lvef))
        if len(self.gallery_rows) < 2:
            raise ValueError(f"retrieval needs at least 2 {split} subjects with a known LVEF, got "
                             f"{len(self.gallery_rows)}")
        self._gallery_position = {int(row): i for i, row in enumerate(self.gallery_rows)}
        ids = data.subject_ids[self.gallery_rows]
        self.query = w.Dropdown(options=ids[:MAX_OPTIONS].tolist(), description="query")
        self.status = w.HTML()
        self.search = id_search(self.set_query, self.status)
        self.runs = RunPicker(data, self.update)
        self.method, self.seed = self.runs.method, self.runs.seed
        self.direction = w.ToggleButtons(options=list(DIRECTIONS), description="direction")
        self.rank_by = w.ToggleButtons(options=[("cosine (as notebook 04)", "cosine"), ("centred cosine", "centred")],
                                       description="rank by")
        candidates = len(self.gallery_rows) - 1
        self.k = w.IntSlider(min=1, max=min(8, candidates), value=min(k, candidates), description="top k")
        self.relevance_k = w.IntSlider(min=1, max=min(50, candidates), value=min(N_RELEVANT, candidates),
                                       description="relevance k")
        self.table = w.HTML()
        self.figure, self.canvas = canvas(11.2, 4.0)
        for control in (self.query, self.direction, self.rank_by, self.k, self.relevance_k):
            control.observe(lambda _: self.update(), "value")
        self.result: pd.DataFrame | None = None
        if query is not None:
            self.set_query(query)
        self.update()
        self.widget = w.VBox([w.HBox([self.query, self.search, self.method, self.seed]),
                              w.HBox([self.direction, self.rank_by]), w.HBox([self.k, self.relevance_k]),
                              self.status, self.canvas, self.table])

    def set_query(self, subject_id: str) -> None:
        """Make ``subject_id`` the query (its id as stored or typed with other surrounding spaces,
        ``ExploreData.resolve``; a ValueError when it is unknown or not in the gallery)."""
        subject_id = self.data.resolve(subject_id)
        position = self.data.position(subject_id)
        if position not in self._gallery_position:
            where = self.data.splits[position]
            reason = (f"is in the {where} split" if where != self.split_name else "has no known LVEF")
            raise ValueError(f"query {subject_id!r} {reason}; the gallery is the {self.split_name} split's subjects "
                             "with a known LVEF")
        self.status.value = ""
        list_first(self.query, subject_id)

    def neighbours(self) -> pd.DataFrame:
        """The current query's top k: rank, subject_id, cosine, centred, relevant, and the volume phenotypes."""
        from ptacl_core.evaluation.retrieval import (  # lazy: loads torch; the explorer imports without it
            relevant_sets,
            topk,
            zscore_phenotypes,
        )

        data, rows = self.data, self.gallery_rows
        method, seed = self.runs.value
        if self.direction.value == ECG_TO_CMR:
            if not METHODS[method].contrastive:
                raise ValueError(f"{method!r} has no ECG-CMR projection space: ECG→CMR needs a contrastive method")
            query_space, gallery_space = "ecg_projected", "cmr_projected"
        else:
            query_space = gallery_space = "ecg"
        queries = data.embedding(method, seed, query_space)[rows]
        gallery = data.embedding(method, seed, gallery_space)[rows]
        q = self._gallery_position[data.position(self.query.value)]
        query_mean = data.training_mean(method, seed, query_space)
        gallery_mean = data.training_mean(method, seed, gallery_space)
        exclude = np.array([q])
        if self.rank_by.value == "centred":
            found, _ = topk(queries[q:q + 1] - query_mean, gallery - gallery_mean, self.k.value, exclude=exclude)
        else:
            found, _ = topk(queries[q:q + 1], gallery, self.k.value, exclude=exclude)
        found = found[0]
        raw = queries[q] @ gallery[found].T / (np.linalg.norm(queries[q]) * np.linalg.norm(gallery[found], axis=1))
        centred = centred_cosine(queries[q], gallery[found], query_mean, gallery_mean)
        volumes = data.volumes()
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

    @staticmethod
    def _lvef(value: float) -> str:
        return f"{display_name('LVEF_pct')} {fmt(value, 0)} {unit('LVEF_pct')}"

    def update(self) -> None:
        if self.query.value is None or self.runs.seed.value is None:
            return
        try:
            self.result = self.neighbours()
        except ValueError as error:
            self.table.value = error_html(error)
            return
        data, result = self.data, self.result
        lvef = EVALUATED.index("LVEF_pct")
        with locked(self.figure):
            self.figure.clear()
            columns = 1 + len(result)
            # captions on top, then the ED frame, then lead II; one column per subject, the query first
            grid = self.figure.add_gridspec(2, columns, height_ratios=[2, 1], left=0.01, right=0.99, bottom=0.03,
                                            top=0.78, wspace=0.1, hspace=0.05)
            for column, subject in enumerate([self.query.value, *result.subject_id]):
                ecg, _ = data.ecg(subject)
                axis = self.figure.add_subplot(grid[1, column])
                seconds = min(ecg.shape[1] / data.fs, 2.5)
                samples = int(seconds * data.fs)
                axis.plot(np.arange(samples) / data.fs, ecg[1, :samples], lw=0.6, color="k")
                axis.set_xticks([])
                axis.set_yticks([])
                axis = self.figure.add_subplot(grid[0, column])
                axis.imshow(np.asarray(data.cache_cine(subject)[data.ed_frame(subject)], np.float32), cmap="gray")
                axis.set_axis_off()
                if column == 0:
                    caption = f"query {subject}\n{self._lvef(data.phenotypes()[data.position(subject), lvef])}"
                else:
                    row = result.iloc[column - 1]
                    caption = (f"#{row['rank']} {subject}\ncentred {row.centred:+.2f}\ncos {row.cosine:.3f}\n"
                               f"{self._lvef(row.LVEF_pct)}{' · relevant' if row.relevant else ''}")
                axis.set_title(caption, fontsize=CAPTION_FONT, **LITERAL_TEXT)
            self.figure.suptitle(f"{self.direction.value}, {self.method.value} seed {self.seed.value}: ED frame and "
                                 f"lead II (2.5 s); gallery = {self.split_name} split", fontsize=9, y=0.99,
                                 **LITERAL_TEXT)
            redraw(self.figure)
        shown = result.assign(cosine=result.cosine.map("{:.4f}".format), centred=result.centred.map("{:+.3f}".format))
        if "condition" in shown:
            shown["condition"] = shown.condition.map(condition_name)
        shown = shown.rename(columns={name: axis_label(name) for name in ("LVEF_pct", "LVEDV_mL", "LVM_g")})
        precision = result.relevant.mean()
        self.table.value = (f"precision@{len(result)} for this query: {precision:.2f} (relevant = among its "
                            f"{self.relevance_k.value} nearest in z-scored phenotype space)"
                            + shown.to_html(index=False, float_format="%.1f", escape=True))  # ids: text
