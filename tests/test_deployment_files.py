"""docker-compose.yml and docker/*.Dockerfile are complete and agree with each other and the gateway.

There is no Docker engine on our machines, so nothing here builds or runs a container: these are
the checks that can be made without one (docs/deployment.md says what was and was not run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from spark_gateway import config

yaml = pytest.importorskip("yaml", reason="PyYAML (test extras) reads docker-compose.yml")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SPARK_SERVICES = ["spark-master", "spark-worker-1", "spark-worker-2", "spark-connect"]
WORKERS = ["spark-worker-1", "spark-worker-2"]
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def dockerfile_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    return ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def dockerfile_args(path: Path) -> dict[str, str]:
    return {name: value.strip('"') for name, value in re.findall(r'^ARG (\w+)=("[^"]*"|\S+)', path.read_text(), re.M)}


def base_image(path: Path) -> str:
    """The FROM image, with ${ARG} defaults substituted."""
    image = re.search(r"^FROM (\S+)", path.read_text(), re.M).group(1)  # type: ignore[union-attr]
    return re.sub(r"\$\{(\w+)\}", lambda m: dockerfile_args(path)[m.group(1)], image)


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def confs(command: list[str]) -> dict[str, str]:
    pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def host_port(mapping: str) -> tuple[str, int, int]:
    """("127.0.0.1" or "", host port, container port) of a short-syntax port mapping."""
    *ip, published, target = mapping.split(":")
    return (ip[0] if ip else ""), int(published), int(target)


def pyspark_version() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d.split("==")[1] for d in deps if d.startswith("pyspark"))


def test_docker_compose_config_accepts_the_file() -> None:
    """`docker-compose config` (Debian's docker-compose, which needs no engine) accepts the file."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install -y docker-compose); "
                    "the structural checks in this module still ran")
    done = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr and "ERROR" not in done.stderr, done.stderr


def test_the_whole_stack_is_there(services: dict[str, Any]) -> None:
    """A master, two workers, a Connect server and the gateway; nothing else."""
    assert sorted(services) == sorted([*SPARK_SERVICES, "gateway"])


def test_every_build_context_and_dockerfile_exists(services: dict[str, Any]) -> None:
    """Each service builds from a context directory that exists, with a Dockerfile inside it."""
    for name, service in services.items():
        assert (ROOT / service["build"]["context"]).is_dir(), name
        assert dockerfile_of(service).is_file(), name


def test_every_copy_source_exists_in_its_context(services: dict[str, Any]) -> None:
    """Every COPY in the Dockerfiles names files that exist in the build context."""
    for service in services.values():
        path, context = dockerfile_of(service), ROOT / service["build"]["context"]
        for line in re.findall(r"^COPY (.+)$", path.read_text(), re.M):
            *sources, _dest = [part for part in line.split() if not part.startswith("--")]
            for source in sources:
                assert (context / source).exists(), f"{path.name}: COPY {source}"


def test_one_image_per_dockerfile(services: dict[str, Any]) -> None:
    """Services built from the same Dockerfile share one image name; different Dockerfiles do not."""
    images: dict[Path, set[str]] = {}
    for service in services.values():
        images.setdefault(dockerfile_of(service), set()).add(service["image"])
    assert all(len(names) == 1 for names in images.values()), images
    assert len({next(iter(names)) for names in images.values()}) == len(images)
    assert {dockerfile_of(services[s]) for s in SPARK_SERVICES} == {ROOT / "docker" / "spark.Dockerfile"}
    assert dockerfile_of(services["gateway"]) == ROOT / "docker" / "gateway.Dockerfile"


def test_images_are_the_official_ones_at_the_clients_version(services: dict[str, Any]) -> None:
    """Spark comes from the official Apache image at pyspark's version; the gateway from python:3.11-slim."""
    version = pyspark_version()
    spark = base_image(dockerfile_of(services["spark-master"]))
    official = rf"(apache/spark|spark):{re.escape(version)}(-scala2\.13-java(17|21)(-python3)?-ubuntu)?"
    assert re.fullmatch(official, spark), spark
    assert services["spark-master"]["image"].endswith(":" + version)
    assert base_image(dockerfile_of(services["gateway"])) == "python:3.11-slim"


def test_executors_run_the_gateways_python(services: dict[str, Any]) -> None:
    """Python UDFs pickled by the gateway run on executors with the same Python minor version."""
    gateway_python = re.fullmatch(r"python:(\d+\.\d+)-slim", base_image(dockerfile_of(services["gateway"])))
    spark_file = dockerfile_of(services["spark-master"])
    assert gateway_python is not None
    args = dockerfile_args(spark_file)
    assert args["PYTHON"] == f"python{gateway_python.group(1)}"
    text = spark_file.read_text()
    assert "${PYTHON} -m venv /opt/udf-python" in text and "ENV PYSPARK_PYTHON=/opt/udf-python/bin/python" in text
    # pandas and Arrow UDFs import these on the executors, pinned (a rebuild gets the same ones).
    pins = dict(item.split("==") for item in args["UDF_PACKAGES"].split())
    assert set(pins) == {"pyarrow", "pandas", "numpy"} and all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in pins.values())


def test_gateway_image_installs_the_projects_dependencies_without_jars(services: dict[str, Any]) -> None:
    """The gateway image installs pyproject's dependencies as they are (pyspark-client has no 4.3.0 to swap in)."""
    text = dockerfile_of(services["gateway"]).read_text()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pyspark[connect]=={pyspark_version()}" in deps
    assert "tomllib.load(open('pyproject.toml'" in text
    assert "print('\\n'.join(d for d in deps if not d.startswith('spark-gateway-client')))" in text
    instructions = "\n".join(line for line in text.lower().splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"java|jdk|jre", instructions)


def test_spark_services_form_one_cluster(services: dict[str, Any]) -> None:
    """Workers and the Connect server use the master's URL; each worker advertises its own host name."""
    master = services["spark-master"]["command"]
    assert master[1] == MASTER_CLASS and option(master, "--host") == "spark-master"
    master_url = f"spark://spark-master:{option(master, '--port')}"
    for name in WORKERS:
        command = services[name]["command"]
        assert command[1] == WORKER_CLASS and command[-1] == master_url, name
        assert option(command, "--host") == services[name]["hostname"] == name
        assert option(command, "--cores") == "1"
    connect = services["spark-connect"]["command"]
    assert option(connect, "--class") == CONNECT_CLASS and option(connect, "--master") == master_url
    conf = confs(connect)
    assert conf["spark.driver.host"] == services["spark-connect"]["hostname"] == "spark-connect"
    assert int(conf["spark.cores.max"]) == len(WORKERS) * int(conf["spark.executor.cores"])
    assert conf["spark.driver.maxResultSize"]
    for name in SPARK_SERVICES:
        assert services[name]["command"][0].startswith("/opt/spark/bin/spark-"), name


def test_gateway_talks_to_the_connect_server(services: dict[str, Any]) -> None:
    """SPARK_REMOTE names the Connect service and the port its gRPC server binds."""
    port = confs(services["spark-connect"]["command"])["spark.connect.grpc.binding.port"]
    assert services["gateway"]["environment"]["SPARK_REMOTE"] == f"sc://spark-connect:{port}"
    assert int(port) in {host_port(p)[2] for p in services["spark-connect"]["ports"]}


def test_gateway_command_and_environment_are_gateway_settings(
        services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's flags and SPARK_GATEWAY_* variables are real settings and give a valid config."""
    gateway = services["gateway"]
    command, env = gateway["command"], gateway["environment"]
    assert command[:4] == ["python", "-m", "spark_gateway", "serve"]
    names = {config.env_name(f) for f in config.Settings.__dataclass_fields__}
    assert {k for k in env if k.startswith("SPARK_GATEWAY_")} <= names
    assert set(env) - names == {"SPARK_REMOTE"}
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args, unknown = parser.parse_known_args(command[4:])
    assert not unknown, f"not gateway flags: {unknown}"
    for name in [n for n in os.environ if n.startswith("SPARK_GATEWAY_") or n == "SPARK_REMOTE"]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings = config.from_arguments(args)
    assert settings.host == "0.0.0.0" and settings.sample_data
    assert settings.remote == env["SPARK_REMOTE"]
    assert settings.log_level == env["SPARK_GATEWAY_LOG_LEVEL"]
    assert [host_port(p)[1:] for p in gateway["ports"]] == [(settings.port, settings.port)]
    assert f"127.0.0.1:{settings.port}/healthz" in " ".join(gateway["healthcheck"]["test"])


def test_host_ports_are_unique_documented_and_spark_stays_on_loopback(services: dict[str, Any]) -> None:
    """No host port is published twice; Spark's unauthenticated ports bind 127.0.0.1; all are documented."""
    published = [(name, *host_port(p)) for name, s in services.items() for p in s.get("ports", [])]
    ports = [port for _, _, port, _ in published]
    assert len(ports) == len(set(ports)), published
    assert all(ip == "127.0.0.1" for name, ip, _, _ in published if name in SPARK_SERVICES), published
    assert {8765, 4040, 8080} <= set(ports)
    header = COMPOSE.read_text().split("services:")[0]
    docs = (ROOT / "docs" / "deployment.md").read_text()
    for port in ports:
        assert re.search(rf"\b{port}\b", header), f"port {port} not documented in docker-compose.yml"
        assert re.search(rf"\b{port}\b", docs), f"port {port} not documented in docs/deployment.md"


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    """Each service says how to tell it is healthy, with a start period for the JVMs to boot."""
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert not check.get("disable"), name
        assert check.get("start_period") and check.get("interval") and check.get("retries"), name


def test_services_start_in_order_once_their_dependencies_are_healthy(services: dict[str, Any]) -> None:
    """Master, then both workers, then the Connect server, then the gateway, each on service_healthy."""
    expected = {
        "spark-master": set(),
        "spark-worker-1": {"spark-master"},
        "spark-worker-2": {"spark-master"},
        "spark-connect": {"spark-master", *WORKERS},
        "gateway": {"spark-connect"},
    }
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must use the long form with a condition"
        assert set(depends) == expected[name], name
        assert all(d == {"condition": "service_healthy"} for d in depends.values()), name
