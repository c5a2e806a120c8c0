# Spark master, workers and the Spark Connect server: the official Apache Spark image, same
# version as the gateway's pyspark client (pyproject.toml), plus the Python the gateway runs.
#
# Build:  docker build -f docker/spark.Dockerfile -t spark-gateway/spark docker
ARG SPARK_IMAGE=apache/spark:4.3.0-scala2.13-java17-ubuntu
FROM ${SPARK_IMAGE}

# Python UDFs written in gateway sessions are pickled by the gateway's Python (3.11, see
# gateway.Dockerfile) and run by the executors' Python, which must have the same minor version
# (Spark refuses a mismatch). The image's Ubuntu 22.04 python3 is 3.10, so install 3.11, in a
# venv with what pandas and Arrow UDFs import (the versions the gateway's tests run them with).
ARG PYTHON=python3.11
ARG UDF_PACKAGES="pyarrow==26.0.1 pandas==3.1.1 numpy==2.4.6"
USER root
RUN set -ex; \
    apt-get update; \
    apt-get install -y --no-install-recommends ${PYTHON} ${PYTHON}-venv; \
    rm -rf /var/lib/apt/lists/*; \
    ${PYTHON} -m venv /opt/udf-python; \
    /opt/udf-python/bin/pip install --no-cache-dir ${UDF_PACKAGES}; \
    mkdir -p /data/warehouse; \
    chown -R spark:spark /data
ENV PYSPARK_PYTHON=/opt/udf-python/bin/python

# /data is a volume shared by the Connect server and the workers (see docker-compose.yml), so
# tables written by one executor are visible to all; created here so the volume is owned by spark.
VOLUME /data
USER spark
# Master 7077 + UI 8080, worker UI 8081, Connect gRPC 15002 + Spark UI 4040.
EXPOSE 7077 8080 8081 15002 4040
# The base image's entrypoint runs any other command as given ("pass-through mode").
