# One image for every service; the command picks the service: `api`, `processors`, `projector`, `topics`.
#
#   docker build -t esports-live .
#   docker run --rm esports-live --help
#
# Two stages: `build` resolves the pinned dependencies of pyproject.toml into a virtualenv (with a C
# compiler for the few packages without a wheel on some architectures, e.g. faust-streaming on arm64);
# the final stage copies only that virtualenv onto a clean python:3.11-slim, so no compiler, pip cache or
# source tree ships. Dependencies are installed before the source is copied: editing code reuses that
# layer, only a change to pyproject.toml reinstalls them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Unversioned apt packages: Debian's security updates replace exact versions; the base image pins the release.
# hadolint ignore=DL3008
# npm installs the pages' browser dependencies (hls.js, pinned by web/package-lock.json) at build time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev npm \
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
#    web/node_modules is not in the context (.dockerignore): `npm ci` installs it from the lock file, and
#    the package data of `web` carries hls.js into the virtualenv.
COPY . .
RUN npm ci --prefix web --omit=dev --ignore-scripts --no-audit --no-fund \
    && pip install --no-deps . \
    && test -f /opt/venv/lib/python3.11/site-packages/web/node_modules/hls.js/dist/hls.min.js \
    && esports --help >/dev/null


FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="esports-live" \
      org.opencontainers.image.description="Event-sourced eSports live platform on Apache Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ESPORTS_LOG_FORMAT=json \
    ESPORTS_API__HOST=0.0.0.0 \
    ESPORTS_STACK__RUN_DIR=/var/lib/esports \
    ESPORTS_PROCESSORS__DATA_DIR=/var/lib/esports/faust
# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it and volumes can be chowned to it.
RUN groupadd --system --gid 10001 esports \
    && useradd --system --uid 10001 --gid esports --home-dir /var/lib/esports --shell /usr/sbin/nologin esports \
    && install -d -o esports -g esports /var/lib/esports /var/lib/esports/faust
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/esports
# api 8000, processors /health 6066, projector /health 6067 (each a setting; see infra/settings.py).
EXPOSE 8000 6066 6067
ENTRYPOINT ["esports"]
CMD ["--help"]
