"""Datasets in: ``parsers`` (one module per format: bytes in, records out, no
database and no Django), ``index`` (what validation keeps of a file), ``writer``
(the chunked bulk writes) and ``services`` (import jobs). This package imports
nothing, so the benchmarks can use the parsers where Django is not installed."""
