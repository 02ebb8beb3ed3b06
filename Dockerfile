# dealbase API image: runs against an external PostgreSQL given as DATABASE_URL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEALBASE_LOG_JSON=1

WORKDIR /srv/dealbase
RUN useradd --system --create-home --home-dir /home/dealbase dealbase

COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --upgrade pip && pip install -c constraints.txt -e .

USER dealbase
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
# Without DATABASE_URL the container would start an embedded server in its own
# filesystem: fine for a demo, not for production.
CMD ["dealbase", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
