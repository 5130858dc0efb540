#!/usr/bin/env bash
# Start PrefLab locally on the embedded default: SQLite, a filesystem Celery broker,
# a worker with beat, a worker for the API's synchronous scores, the CPU model. Loads
# the demo project and prints the logins.
source "$(dirname "$0")/_venv.sh"
# A local, git-ignored .env with a generated secret: settings read it, so the
# README's manage.py commands work from any new shell (the environment wins over it).
if [ ! -e .env ]; then
  secret="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
  (umask 077 && printf '%s\n' "# Local development settings written by scripts/dev.sh (git-ignored)." \
    "# preflab/settings.py reads this file; variables set in the environment win." \
    "DEBUG=1" "SECRET_KEY=${secret}" >.env)
  echo "Wrote .env (DEBUG=1 and a generated SECRET_KEY)."
fi
export DEBUG="${DEBUG:-1}"
PORT="${PORT:-8000}"
python manage.py migrate --noinput
python manage.py demo --url "http://127.0.0.1:${PORT}/"
celery -A preflab worker --beat --queues celery --concurrency 1 --loglevel INFO \
  --schedule "${PREFLAB_DATA_DIR:-$ROOT/var}/celerybeat-schedule" >"${PREFLAB_DATA_DIR:-$ROOT/var}/worker.log" 2>&1 &
WORKER=$!
# The API's synchronous scores (queue "score") in a process of their own: a training
# in the worker above never delays them.
celery -A preflab worker --queues score --concurrency 1 --loglevel INFO --hostname "score@%h" \
  >"${PREFLAB_DATA_DIR:-$ROOT/var}/score-worker.log" 2>&1 &
SCORER=$!
trap 'kill $WORKER $SCORER 2>/dev/null; wait $WORKER $SCORER 2>/dev/null' EXIT INT TERM
echo "Celery workers + beat running (logs: ${PREFLAB_DATA_DIR:-var}/worker.log, score-worker.log)." \
  "Web server: http://127.0.0.1:${PORT}/"
python manage.py runserver "127.0.0.1:${PORT}"
