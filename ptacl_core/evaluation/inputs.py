"""What notebooks 03-06 evaluate, resolved once: the folders (cohort, cache, runs, embedding store, figures) from
the notebooks' parameters with the kit's defaults (``ptacl_core.paths``), and the finished runs that belong to
the cache (``runs_for_cache``: a run trained on another cache is left out, with a note saying why).

``EvaluationInputs.resolve`` is the one place a ``None`` parameter becomes a default folder for evaluation;
``Comparison.load`` (notebooks 03-05) and ``ExploreData.load`` (notebook 06) both start from it. Importing this
module loads no torch (the explorer imports it at its top).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptacl_core import paths
from ptacl_core.evaluation import tables as table_layout
from ptacl_core.model.presets import preprocessing_preset
from ptacl_core.preprocessing.cache import Cache, default_cache_dir

if TYPE_CHECKING:
    from ptacl_core.training.runs import RunInfo


def default_store() -> Path:
    """``outputs/embeddings``: the embedding store of notebooks 03-06 (``evaluation.embeddings``)."""
    return paths.outputs_root() / "embeddings"


@dataclass(frozen=True)
class EvaluationInputs:
    """The folders of one evaluation and which runs it reads (``preset``, ``fast``)."""

    cohort_dir: Path
    cache_dir: Path
    runs_dir: Path
    embeddings_dir: Path
    figures_dir: Path
    preset: str = "tiny"
    fast: bool = False

    @classmethod
    def resolve(cls, cohort_dir=None, cache_dir=None, preset: str = "tiny", runs_dir=None, embeddings_dir=None,
                figures_dir=None, fast: bool = False) -> EvaluationInputs:
        """Defaults: the synthetic cohort (``paths.default_cohort_dir``), the cache notebook 01 built for it and
        ``preset`` (``default_cache_dir``), ``runs/``, ``outputs/embeddings``, ``figures/``."""
        cohort_dir = Path(cohort_dir) if cohort_dir else paths.default_cohort_dir()
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(cohort_dir, preprocessing_preset(preset))
        return cls(cohort_dir, cache_dir, Path(runs_dir) if runs_dir else paths.runs_root(),
                   Path(embeddings_dir) if embeddings_dir else default_store(),
                   Path(figures_dir) if figures_dir else paths.figures_root(), preset, bool(fast))

    @property
    def tables_dir(self) -> Path:
        """``<figures_dir>/tables`` (``evaluation.tables``), not created."""
        return table_layout.tables_dir(self.figures_dir)

    def open_cache(self) -> Cache:
        return Cache.open(self.cache_dir)

    def runs(self, cache: Cache) -> tuple[list[RunInfo], list[str]]:
        """The finished ``preset`` runs in ``runs_dir`` that belong to ``cache``, and notes on those left out."""
        from ptacl_core.training.runs import find_runs  # lazy: loads torch; the explorer imports this module without it

        found, notes = find_runs(self.runs_dir, self.preset, self.fast)
        kept, foreign = runs_for_cache(found, cache)
        return kept, notes + foreign


def runs_for_cache(runs: list[RunInfo], cache: Cache) -> tuple[list[RunInfo], list[str]]:
    """(runs trained on ``cache`` or of unknown origin, a note per run left out). A run trained on another cache
    (other subjects or splits: another data fingerprint) could have seen this cache's test subjects."""
    foreign = [r for r in runs if r.data_fingerprint is not None and r.data_fingerprint != cache.fingerprint]
    notes = [f"{r.folder.name}: trained on another cache (fingerprint {r.data_fingerprint[:12]}, this cache "
             f"{cache.fingerprint[:12]}); left out, its training subjects may be in this test split" for r in foreign]
    return [r for r in runs if r not in foreign], notes
