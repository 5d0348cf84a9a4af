"""The study's analysis: loading results, statistics, tables, figures and the report.

Modules load on first use (`from alexnet_jax.analysis import stats`), so importing
`alexnet_jax.paper` for its published numbers costs nothing.
"""
