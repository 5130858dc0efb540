"""Fixtures shared by the import tests."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.dataio.imports._helpers")

from tests.dataio.imports._helpers import import_ok, write_jsonl


@pytest.fixture
def seeded(project, tmp_path):
    """A project that already holds data (prompt id "seed"), so 'nothing written' means something."""
    path = write_jsonl(tmp_path / "seed.jsonl", [{"id": "seed", "prompt": "Hi?", "responses": ["Hello!", "Go away."],
                                                 "labels": [{"annotator": "zed", "a": 0, "b": 1, "choice": "A", "strength": 2}]}])
    import_ok(project, "jsonl", path)
    return project
