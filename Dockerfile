# syntax=docker/dockerfile:1
# The connector's image: `docker build -t connector:0.1.0 .` at the repository's root.
# Three stages: `native` builds the native OTLP encoders (native/, Rust, from its
# Cargo.lock: an abi3 build needs no Python); `build` installs this checkout and exactly the runtime part of uv.lock (the
# lock the tests ran with) into a virtualenv, with the same pinned uv as scripts/test; the
# final stage copies only that virtualenv onto the same slim Python base, run as non-root.
# The Python minor version is the tests' (.python-version); tests/deploy/test_dockerfile.py checks.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${RUST_IMAGE} AS native
WORKDIR /native
COPY native/Cargo.toml native/Cargo.lock ./
COPY native/src ./src
ENV PYO3_NO_PYTHON=1
RUN cargo build --release --locked

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY scripts/uv-requirements.txt ./scripts/
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes \
      --only-binary=:all: -r scripts/uv-requirements.txt
COPY pyproject.toml uv.lock README.md ./
COPY connector ./connector
# into the package (pyproject's package-data); the compiler stays in the native stage
COPY --from=native /native/target/release/lib_native.so ./connector/otlp/_native.abi3.so
# --frozen: the lock as it is, nothing resolved today; --no-editable: a real install, so
# only /opt/connector is needed at run time; wheels only (no compiler in the image).
ENV UV_PROJECT_ENVIRONMENT=/opt/connector \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
RUN uv sync --frozen --no-dev --no-editable --no-build --no-install-project \
      --python /usr/local/bin/python \
 && uv sync --frozen --no-dev --no-editable --python /usr/local/bin/python

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="connector" \
      org.opencontainers.image.description="Turns cron and rate schedules into events from a Python script and ships them to Kafka, OTLP, stdout or files" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# A fixed uid/gid, so Kubernetes' runAsNonRoot can check it (the chart runs as 10001).
RUN groupadd --system --gid 10001 connector \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin connector
COPY --from=build /opt/connector /opt/connector
# No .pyc writes: the root filesystem and the mounted scripts are read-only in the chart.
ENV PATH=/opt/connector/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
# Prometheus /metrics, /healthz and /readyz (the config's metrics.port, --metrics-port).
EXPOSE 9464
ENTRYPOINT ["connector"]
CMD ["run", "/etc/connector/config.yaml"]
