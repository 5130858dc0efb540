"""Datasets out (DESIGN §7): ``spec`` (what to export, snapshots), ``context`` (what an
export reads: labels by chunk, texts, pseudonyms), ``rows`` (the rows of each
format), ``aggregate`` (votes, Dawid-Skene), ``writers`` (JSONL, CSV,
Parquet, datasets folders), ``card`` (the dataset card) and ``services``
(``export_write`` and export jobs).

An export is a folder: the data and a ``README.md`` dataset card, renamed into
place only when complete (``services``).

Labels are streamed in primary-key order of what they label (``.iterator()``), a
chunk at a time; texts are fetched per chunk. Memory stays flat whatever the
size of the project, except for what an aggregation strictly needs: Dawid-Skene
fits on every (comparison, annotator, label) triple, kept as integers, and the
card's agreement (``quality.services.judgments_agreement``) holds each comparison's
(annotator, answer) pairs.

A snapshot id (``p{project}-j{judgment}-r{rating}-k{ranking}``) names the highest
label ids an export reads. The same snapshot and options give the same rows, byte
for byte: ordering is deterministic and no row carries a timestamp. (A label
edited in place afterwards, e.g. by re-importing a changed file, is read as it is
now.)

Derived judgments (``source = derived``, made from ratings by a rubric rule) are
never exported as human labels: they are left out and counted, unless an export
asks for them with ``include_derived``.
"""
