"""Evaluation of frozen encoders (METHOD.md §5), in the order the notebooks use it:

``embeddings`` (per-checkpoint, cached) -> ``probing`` (ridge probes) and ``retrieval`` (chunked top-k, metrics)
-> ``comparison`` (every method on one cache) -> ``statistics`` (seed summaries, paired differences, the
verdict rule) -> ``report`` (results.md/json) and ``figures``. ``diagnostics``: the quick checks while training.
"""
