# `chainrisk serve` in one image, built once: every dependency installed at build time, the project
# installed as a package (not editable), run by a user without privileges.
#
#   docker build --build-arg TORCH_INDEX_URL=<URL of PyTorch's CPU-only wheel index> -t chainrisk .
#
# torch is pinned to its CPU build, which PyTorch publishes on its own wheel index; pass that index's URL
# (docs/SERVICE.md says where to find it). Everything else comes from pip's default index.
FROM python:3.11-slim

ARG TORCH_INDEX_URL
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/chainrisk/bin:$PATH

RUN test -n "$TORCH_INDEX_URL" \
        || { echo "build with --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index> (docs/SERVICE.md)" >&2; exit 1; } \
    && python -m venv /opt/chainrisk \
    && pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY chainrisk ./chainrisk
COPY indexer ./indexer
COPY graph ./graph
COPY analytics ./analytics
COPY devnet ./devnet
COPY migrations ./migrations
# The migrations runner finds alembic.ini and migrations/ next to the installed packages.
RUN pip install . \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && cp -r alembic.ini migrations "$site/" \
    && python -c "from chainrisk.migrate import ROOT; assert (ROOT / 'migrations' / 'env.py').is_file(), ROOT" \
    && cd / && rm -rf /src

RUN useradd --system --create-home --uid 10001 chainrisk \
    && mkdir -p /data /config \
    && chown chainrisk /data
USER chainrisk
# CHAINRISK_HOME holds exported oracle prices (and the embedded server, unused with a database URL);
# ./chainrisk.toml is read from /config when one is mounted there.
ENV CHAINRISK_HOME=/data \
    CHAINRISK_SERVE_ADDR=0.0.0.0
WORKDIR /config
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 \
    CMD ["python", "-m", "chainrisk.serve.healthcheck"]
CMD ["chainrisk", "serve"]
