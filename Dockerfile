# The aisched image: the scheduler (`aisched run`, the default target) and the node agent
# (`aisched agent`, target `agent`) from one set of layers; the manifests set `command` anyway.
# Elsewhere:   docker build -t ghcr.io/aisched/aisched:0.1.0 .
#              docker build --target agent -t ghcr.io/aisched/aisched-agent:0.1.0 .
# Here (no Docker engine, no registry): `make image` builds it with buildah from a Debian root
# filesystem made locally by mmdebstrap, passed in as BASE.
#
# It runs as uid 65532 and writes nothing outside /tmp, so a read-only root filesystem with an
# emptyDir on /tmp (as manifests/base mounts) is all it needs.
ARG BASE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/aisched
COPY pyproject.toml README.md /src/
COPY operator /src/operator
# The operator's dependencies, the embedded emulator's (for `aisched run --emulator` and `demo`) and
# the device plugin's gRPC (`aisched agent --device-plugin`); no simulator plots, no test tools. Bytecode is compiled here: the root filesystem is read-only.
RUN /opt/aisched/bin/pip install '/src[deviceplugin,emulator,otel]' \
 && /opt/aisched/bin/pip uninstall --yes setuptools pip \
 && /opt/aisched/bin/python3 -m compileall -q /opt/aisched

FROM ${BASE} AS runtime
# A named user for uid 65532: the operator's identity (getpass) looks it up in /etc/passwd.
RUN useradd --uid 65532 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin aisched
COPY --from=build /opt/aisched /opt/aisched
ENV PATH=/opt/aisched/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
USER 65532:65532

FROM runtime AS agent
CMD ["aisched", "agent"]

FROM runtime AS scheduler
EXPOSE 8080
CMD ["aisched", "run"]
