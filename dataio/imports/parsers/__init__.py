"""Parsers for import formats: bytes in, normalised records out, no database.

Every parser yields ``Record`` objects (``base``) and raises ``ImportRejected``
naming the line (1-based; for a JSON-array file, the line where the bad element
starts) and the field. The import service (``dataio.imports.services``) validates
everything before writing anything, so a bad record anywhere rejects the whole file.

One module per format: ``generic`` (the generic JSONL schema), ``flat`` (the
generic flat schema as CSV or Parquet); the others (``hh-rlhf``, ``summarize``,
``pandalm``, ``oasst``, ``finegrained``, ``helpsteer2``, ``ultrafeedback``) follow
their public releases, and each parser's docstring says how the file maps onto
prompts, responses and labels. Pairwise labels become judgments, ``ratings``
ratings of one response (scores, rationale, spans as character offsets into its
text) and ``rankings`` ordered groups of responses (ties share a group; responses
left out are unranked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from .base import Record
from .finegrained import parse_finegrained
from .flat import parse_csv, parse_parquet
from .generic import parse_jsonl
from .helpsteer2 import parse_helpsteer2
from .hh import parse_hh
from .oasst import parse_oasst
from .pandalm import parse_pandalm
from .summarize import parse_summarize
from .ultrafeedback import parse_ultrafeedback

PARSERS: dict[str, Callable[[Path], Iterator[Record]]] = {
    "jsonl": parse_jsonl,
    "hh-rlhf": parse_hh,
    "summarize": parse_summarize,
    "pandalm": parse_pandalm,
    "oasst": parse_oasst,
    "finegrained": parse_finegrained,
    "helpsteer2": parse_helpsteer2,
    "ultrafeedback": parse_ultrafeedback,
    "csv": parse_csv,
    "parquet": parse_parquet,
}
