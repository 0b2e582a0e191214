"""Evaluation of frozen encoders (METHOD.md §5), in the order the notebooks use it:

``inputs`` (the folders and the runs that belong to a cache, resolved once) -> ``embeddings`` (per-checkpoint,
cached) and ``references`` (reference feature rows) -> ``probing`` (ridge probes) and ``retrieval`` (chunked top-k,
metrics) -> ``comparison`` (every method on one cache) -> ``statistics`` (seed summaries, paired differences, the
verdict rule) and ``endpoints`` (the pre-registered endpoints and the headline comparison) -> ``tables`` (the
results-table layout under ``figures/tables``) -> ``findings`` (what the reading compares, judged) -> ``report``
(results.md/json). ``embedding_maps``: 2-D maps of embeddings; ``trust``: trust scores of predictions;
``diagnostics``: the quick checks while training; ``training_summary``: what the runs themselves say;
``readings``: the paragraph printed under each figure of notebooks 00-05, generated from its numbers; ``heart_rate``:
the ECG's heart rate and the temporal phenotypes beyond it; ``scaling``: the endpoints and reference rows against
the cohort size (``--profile scaling``, notebook 07); ``encoder_choice``: the ECG encoder chosen on validation, both
reported on test (``--profile encoders``, notebook 08).
"""
