# syntax=docker/dockerfile:1
# The driftgate image: `driftgate run --config /etc/driftgate/config.yaml` as a non-root user.
#
# Two stages: the first builds wheels for driftgate and its dependencies, the second installs
# only those wheels, so no build tools or sources end up in the image.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY monitor ./monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# In a container the API must listen beyond loopback. This variable wins over api.host in the
# config file; `docker run -e DRIFTGATE__API__HOST=...` changes it.
ENV DRIFTGATE__API__HOST=0.0.0.0
# A fixed uid/gid, so a runAsUser / runAsNonRoot in Kubernetes matches the image.
RUN groupadd --gid 10001 driftgate \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/driftgate --shell /usr/sbin/nologin driftgate \
 && install -d -o driftgate -g driftgate /var/lib/driftgate /etc/driftgate
# The wheels are mounted for the install, not copied: they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels driftgate
# The shipped dashboards and alert rules, for `driftgate dashboards push` from the image.
COPY dashboards /usr/share/driftgate/dashboards
COPY alerts /usr/share/driftgate/alerts
# state.dir's default (./.driftgate) is relative: run where the driftgate user may write.
WORKDIR /var/lib/driftgate
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["driftgate"]
CMD ["run", "--config", "/etc/driftgate/config.yaml"]
