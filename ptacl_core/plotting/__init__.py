"""Figures, in one style: ``style`` (the kit's colour-blind-safe colours, sizes for a two-column paper, fonts
(``use_kit_style``, ``kit_style``), panel letters, how methods and reference rows are drawn, ``save_figure`` as
PNG + PDF, ``show_figure`` to also show it inline), ``cohort`` (the cohort, the cache and training: notebooks
00-02), ``comparison`` (the results of notebooks 03-05), ``scaling`` (notebook 07's endpoints against N), ``encoders`` (notebook 08's encoder choice), ``checks`` (the figure standard as a test:
``checks.figure_problems``: labels with units, no overlapping text, no text over data, the size). Every function
returns its matplotlib Figure; the notebooks save and show it with ``show_figure``.

``from ptacl_core import plotting`` gives the style and the cohort figures (``plotting.plot_ecg_12lead``).
"""

from ptacl_core.plotting.cohort import (
    plot_cine_grid,
    plot_cine_phases,
    plot_ecg_12lead,
    plot_ecg_before_after,
    plot_electromechanical_coupling,
    plot_phase_similarity,
    plot_phenotypes_by_condition,
    plot_rr_and_flags,
)
from ptacl_core.plotting.style import (
    CONDITION_COLOURS,
    LABEL_COLOURS,
    MARK_COLOUR,
    save_figure,
    show_figure,
    use_kit_style,
)

__all__ = ["CONDITION_COLOURS", "LABEL_COLOURS", "MARK_COLOUR", "plot_cine_grid", "plot_cine_phases", "plot_ecg_12lead",
           "plot_ecg_before_after", "plot_electromechanical_coupling", "plot_phase_similarity",
           "plot_phenotypes_by_condition", "plot_rr_and_flags", "save_figure", "show_figure", "use_kit_style"]
