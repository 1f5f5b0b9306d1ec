# One image for every pegasus process (collectors, ring servers, one-shot CLI jobs).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PEGASUS_CONFIG=/app/ops/pegasus.toml PEGASUS_DATA_DIR=/data
# A C compiler builds the ring's kernels at install; libzstd1 is in the base image.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md CHANGELOG.md ./
COPY pegasus_kafka ./pegasus_kafka
COPY schemas ./schemas
COPY ops/pegasus.toml ./ops/pegasus.toml
RUN pip install --no-cache-dir -e . && mkdir -p /data
VOLUME ["/data"]
ENTRYPOINT []
CMD ["pegasus", "--help"]
