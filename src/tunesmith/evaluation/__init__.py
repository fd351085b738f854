"""tunesmith.evaluation: how good a model is, and whether it copies its training data.

- :mod:`~tunesmith.evaluation.metrics`: musical statistics (MusPy / Yang & Lerch) and overlapping areas
- :mod:`~tunesmith.evaluation.texture`: structure and texture (repeated bars, bass, long notes)
- :mod:`~tunesmith.evaluation.memorisation`: ``MemorisationIndex``, the longest copied run of notes
- :mod:`~tunesmith.evaluation.loss`: held-out loss, perplexity, token accuracy
- :mod:`~tunesmith.evaluation.sampling`: the pieces ``evaluate`` generates, per setting
- :mod:`~tunesmith.evaluation.summary`: per-setting summaries and the quality bar
- :mod:`~tunesmith.evaluation.report`: ``run_evaluation``, behind ``tunesmith evaluate``

Submodules are imported on use, so importing this package costs nothing.
"""
