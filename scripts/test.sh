#!/usr/bin/env bash
# Run the whole test suite. Uses DATABASE_URL when set (CI: PostgreSQL), else
# SQLite; tests that need PostgreSQL or Redis are skipped, and named in the
# summary, when those servers are absent (PREFLAB_REQUIRE_SERVICES=1 turns such a
# skip into a failure).
source "$(dirname "$0")/_venv.sh"
# Browser tests (tests/browser) need Debian's chromium (apt-get install chromium);
# without /usr/bin/chromium they are skipped. Not installed here: users may not be root.
exec python -m pytest "$@"
