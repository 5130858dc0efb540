#!/usr/bin/env bash
# Start PrefLab locally on the embedded default: SQLite, a filesystem Celery broker,
# one worker with beat, the CPU model. Loads the demo project and prints the logins.
source "$(dirname "$0")/_venv.sh"
export DEBUG="${DEBUG:-1}"
PORT="${PORT:-8000}"
python manage.py migrate --noinput
python manage.py demo --url "http://127.0.0.1:${PORT}/"
celery -A preflab worker --beat --concurrency 1 --loglevel INFO \
  --schedule "${PREFLAB_DATA_DIR:-$ROOT/var}/celerybeat-schedule" >"${PREFLAB_DATA_DIR:-$ROOT/var}/worker.log" 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null' EXIT INT TERM
echo "Celery worker + beat running (log: ${PREFLAB_DATA_DIR:-var}/worker.log). Web server: http://127.0.0.1:${PORT}/"
python manage.py runserver "127.0.0.1:${PORT}"
