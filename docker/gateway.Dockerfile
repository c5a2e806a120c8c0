# The gateway: Python and the Spark Connect *client* only. It talks to a remote Spark Connect
# server (SPARK_REMOTE / --remote), so the image has no JVM and no Spark jars.
#
# Build from the repository root:  docker build -f docker/gateway.Dockerfile -t spark-gateway/gateway .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer. The list is the project's own (pyproject.toml), without
# spark-gateway-client (the protocol package), which is not on an index: it is installed from the
# source below. Same versions as pyproject.toml, so nothing here can drift from it. pyspark[connect]
# stays as it is: it carries Spark's jars (~470 MB, unused here: the image has no JVM), because
# pyspark-client, the same client without jars, has no release of the gateway's pinned version
# (4.3.0; its newest is 4.2.0). Swap it in once it has: d.replace('pyspark[connect]', 'pyspark-client').
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('spark-gateway-client')))" \
        > /tmp/requirements.txt \
    && cat /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The two distributions, as wheels are installed: the light client with the protocol package, then
# the server, whose package data carries the web notebook (gateway/spark_gateway/web).
COPY protocol ./protocol
COPY clients ./clients
COPY gateway ./gateway
RUN pip install ./clients/python && pip install --no-deps . && rm -rf /app/*

RUN useradd --system --uid 10001 --home-dir /app gateway
USER gateway

EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz', timeout=2)"]

# Everything else comes from SPARK_GATEWAY_* variables or extra flags; SPARK_REMOTE is required
# here (without it the gateway would try to start an embedded Spark, and this image has no Java).
CMD ["python", "-m", "spark_gateway", "serve", "--host", "0.0.0.0", "--port", "8765"]
