# One image for web, worker and beat. torch==2.13.0 from PyPI is the CUDA build on
# Linux, which the GPU worker needs; build with
#   --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
# (docker-compose.cpu.yml does this) for a much smaller CPU-only image.
FROM python:3.11-slim

ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PREFLAB_DATA_DIR=/data \
    PREFLAB_STATIC_ROOT=/app/staticfiles \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

WORKDIR /app
RUN useradd --create-home --uid 1000 preflab && mkdir -p /data && chown preflab /data

# Dependencies first so code changes do not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir -p preflab annotate rubrics models_svc frontend \
 && for p in preflab annotate rubrics models_svc frontend; do touch $p/__init__.py; done \
 && PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL" pip install . \
 && pip uninstall -y preflab

COPY . .
RUN PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL" pip install --no-deps . \
 && DEBUG=1 PREFLAB_DATA_DIR=/tmp/build python manage.py collectstatic --noinput \
 && rm -rf /tmp/build

USER preflab
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
# Worker class, count, threads and timeouts: preflab/gunicorn.conf.py (WEB_CONCURRENCY,
# PREFLAB_WEB_THREADS size it).
CMD ["gunicorn", "--config", "preflab/gunicorn.conf.py", "preflab.wsgi:application"]
