# syntax=docker/dockerfile:1
# The connector's image: `docker build -t connector:0.1.0 .` at the repository's root.
# Two stages: `build` makes the wheel of this checkout and installs it, with every
# runtime dependency pinned, into a virtualenv; the final stage copies only that
# virtualenv onto the same slim Python base and runs it as a non-root user.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connector ./connector
# Exact versions of the whole runtime dependency tree, wheels only (no compiler here).
# tests/test_dockerfile.py checks them against pyproject.toml; update both together.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/connector \
 && /opt/connector/bin/pip install --no-cache-dir --disable-pip-version-check \
      --only-binary=:all: /wheels/connector-*.whl \
      annotated-types==0.7.0 \
      confluent-kafka==2.16.1 \
      croniter==7.0.0 \
      grpcio==1.85.3 \
      opentelemetry-proto==1.45.2 \
      orjson==3.13.0 \
      prometheus-client==0.26.0 \
      protobuf==7.36.2 \
      pydantic==2.13.4 \
      pydantic-core==2.46.4 \
      python-dateutil==2.9.0.post0 \
      pyyaml==6.0.3 \
      six==1.17.0 \
      typing-extensions==4.15.0 \
      typing-inspection==0.4.2

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
