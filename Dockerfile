# The benchgate image (docs/operations.md, "Containers"): a process worker by default, and the job image
# of the Docker and Kubernetes work pools in deployments/containers.yaml, whose workers replace the
# command with `prefect flow-run execute`. There is no ENTRYPOINT so that replacement works on both.
#
#   docker build -t benchgate:latest .                       # --build-arg EXTRA_PACKAGES=s3fs for an S3 store
#   docker run --rm -e PREFECT_API_URL=http://prefect:4200/api -e BENCHGATE_STORE=s3://bucket/benchgate benchgate:latest
FROM python:3.11-slim

# bubblewrap isolates model-written code (docs/sandbox.md); it needs user namespaces in the container.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

# The code stays here too: deployments' entrypoints (flows/*.py) and request files are read from this
# directory, which the deployments' pull step makes the working directory.
WORKDIR /opt/benchgate
COPY pyproject.toml README.md prefect.yaml ./
COPY benchgate ./benchgate
COPY flows ./flows
COPY tasks ./tasks
COPY scorers ./scorers
COPY deployments ./deployments
COPY examples ./examples
ARG EXTRA_PACKAGES=""
RUN pip install . ${EXTRA_PACKAGES}

RUN useradd --create-home --uid 10001 benchgate && mkdir -p /data && chown benchgate /data
USER benchgate
ENV BENCHGATE_STORE=/data/benchgate

CMD ["prefect", "worker", "start", "--pool", "benchgate", "--type", "process", "--limit", "4"]
