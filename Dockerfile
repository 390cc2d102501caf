# The platform's images. The command picks the service: `api`, `edge`, `processors`, `projector`,
# `topics`, `ingest`.
#
#   docker build -t esports-live .                                  # api, edge, processors, projector
#   docker build --target ingest -t esports-live-ingest .           # ingest: + FFmpeg, nginx-rtmp
#   docker run --rm esports-live --help
#
# Two targets, not one image with everything: only the ingest node runs FFmpeg and nginx. Their Debian
# packages (FFmpeg's codec libraries above all) add a few hundred MB and most of the image's CVE
# reports, which the API and edge pods, the ones an autoscaler starts by the dozen, would pull and
# carry for nothing. Both targets share every layer up to `runtime`, so the second build costs only the
# apt layer.
#
# Stages: `web-assets` installs the pages' browser dependencies (hls.js, pinned by
# web/package-lock.json) with Node's own image; `build` resolves the pinned dependencies of pyproject.toml
# into a virtualenv (with a C compiler for the few packages without a wheel on some architectures, e.g.
# faust-streaming on arm64) and installs the project with hls.js as package data; `runtime` copies only
# that virtualenv onto a clean python:3.11-slim, so no compiler, Node, pip cache or source tree ships.
# Dependencies are installed before the source is copied: editing code reuses that layer, only a change
# to pyproject.toml reinstalls them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS web-assets
WORKDIR /web
COPY web/package.json web/package-lock.json ./
# --ignore-scripts: a browser library has nothing to build; no install script of a dependency runs.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && test -f node_modules/hls.js/dist/hls.min.js


FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Unversioned apt packages: Debian's security updates replace exact versions; the base image pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# 1. The runtime dependencies only (no dev extras), read from pyproject.toml.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# 2. The project itself (a regular, non-editable install: packages + package data, no tests or bench).
#    web/node_modules is not in the context (.dockerignore): it comes from the web-assets stage, and the
#    package data of `web` carries hls.js into the virtualenv.
COPY . .
COPY --from=web-assets /web/node_modules web/node_modules
RUN pip install --no-deps . \
    && test -f /opt/venv/lib/python3.11/site-packages/web/node_modules/hls.js/dist/hls.min.js \
    && test -f /opt/venv/lib/python3.11/site-packages/infra/local/nginx/ingest.conf.tmpl \
    && esports --help >/dev/null


FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="esports-live" \
      org.opencontainers.image.description="Event-sourced eSports live platform on Apache Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ESPORTS_LOG_FORMAT=json \
    ESPORTS_API__HOST=0.0.0.0 \
    ESPORTS_EDGE__HOST=0.0.0.0 \
    ESPORTS_PROCESSORS__WEB_HOST=0.0.0.0 \
    ESPORTS_PROJECTIONS__WEB_HOST=0.0.0.0 \
    ESPORTS_STACK__RUN_DIR=/var/lib/esports \
    ESPORTS_PROCESSORS__DATA_DIR=/var/lib/esports/faust
# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it and volumes can be chowned to it.
RUN groupadd --system --gid 10001 esports \
    && useradd --system --uid 10001 --gid esports --home-dir /var/lib/esports --shell /usr/sbin/nologin esports \
    && install -d -o esports -g esports /var/lib/esports /var/lib/esports/faust
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/esports
# api 8000, edge 8765, processors /health 6066, projector /health 6067 (each a setting; see infra/settings.py).
EXPOSE 8000 8765 6066 6067
ENTRYPOINT ["esports"]
CMD ["--help"]


# `docker build --target ingest`: the ingest node (`esports ingest`, `esports ingest pull`, `esports demo`).
# Runtime packages only, no compiler: FFmpeg (and libsrt, its SRT library, which the SRT listener loads),
# nginx with the RTMP module at the path ESPORTS_INGEST__RTMP_MODULE defaults to, and the demo clock's font.
# The node runs both nginx in the foreground as uid 10001 from its run folder (never the system nginx),
# so nginx needs no root and the ports stay above 1024.
FROM runtime AS ingest
USER root
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg nginx libnginx-mod-rtmp fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && test -f /usr/lib/nginx/modules/ngx_rtmp_module.so \
    && install -d -o esports -g esports /var/lib/esports/hls
ENV ESPORTS_INGEST__HOST=0.0.0.0 \
    ESPORTS_INGEST__HLS_DIR=/var/lib/esports/hls
USER 10001:10001
# RTMP 1935, SRT 9000/udp, HLS origin 8080, HLS cache tier 8081 (the viewers' URL); the hook service
# (8090) listens on the pod's loopback only, for its own nginx.
EXPOSE 1935 9000/udp 8080 8081
CMD ["ingest"]


# The default target (`docker build .` builds the last stage): the runtime without FFmpeg or nginx.
FROM runtime AS app
