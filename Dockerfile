# The node as a container image. Build and run (one node, SQLite in the volume, partners reach it at the public URL):
#
#   docker build -t bpc .
#   docker run -d --name bpc -p 8282:8282 -v bpc-data:/data \
#     -e CONNECTOR_PUBLIC_URL=https://connector.example.com \
#     -e CONNECTOR_API_KEY=change-me-to-32-random-characters -e CONNECTOR_MANAGEMENT_HOST=0.0.0.0 bpc
#
# /data holds the node key, the issuer folder and the SQLite database: back it up (`connector backup`,
# docs/operations.md). The public URL is the HTTPS address of the reverse proxy in front (did:web needs HTTPS);
# compose.yaml runs two nodes, PostgreSQL and Caddy that way. Publish 8181 only to the operator's network.
#
# Base image pinned by digest: python:3.11.14-slim, the multi-arch index digest (linux/amd64 and linux/arm64)
# as published in several public Dockerfiles in 2026; it was not pulled on the machine that wrote this line.
# Refresh it with `docker buildx imagetools inspect python:3.11-slim` (or `crane digest python:3.11-slim`)
# and put the digest it prints here; also `make lock` after a dependency changes in pyproject.toml.
FROM python:3.11.14-slim@sha256:c8271b1f627d0068857dce5b53e14a9558603b527e46f1f901722f935b786a39

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 connector
WORKDIR /app

# Dependencies first, exactly as locked (each file checked against its hash), so code changes reuse this layer.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY policies ./policies
COPY catalog ./catalog
COPY connector ./connector
# The node itself (its build backend, setuptools as pinned in pyproject.toml, is fetched for the build only).
RUN pip install --no-deps . && mkdir /data && chown 10001:10001 /data

USER 10001:10001
# Both surfaces listen on all interfaces of the container; the management surface needs CONNECTOR_API_KEY
# for that, else it stays on the container's loopback (the health check below reaches it there either way).
ENV CONNECTOR_DATA_DIR=/data \
    CONNECTOR_PROTOCOL_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8282 8181
STOPSIGNAL SIGTERM
# `connector health` asks the node's own /ready (database reachable, background loops running); exit 0 or 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["connector", "health"]
CMD ["connector", "serve"]
