"""The NLU study (αVIL paper §4.2, Table 2): CB, COPA, MRPC, RTE and WNLI on a shared encoder.

Modules: :mod:`~alphavil.nlu.readers` (GLUE TSV / SuperGLUE JSONL files), :mod:`~alphavil.nlu.data`
(tokenisation, COPA format, dynamic padding), :mod:`~alphavil.nlu.encoder` (Hugging Face encoder
with per-task heads), :mod:`~alphavil.nlu.spec` (the ``data.name = "nlu"`` config),
:mod:`~alphavil.nlu.predict` (leaderboard submission files and ensembles) and
:mod:`~alphavil.nlu.fixtures` (small files in the official formats for tests and the CPU demo).
"""
