"""The ports the gateway picks for the JVMs it starts are free and distinct.

A CI run once lost a test to this: two binds to port 0 one after the other got the same
port, the embedded Spark's UI took the gRPC port, and that Spark Connect server never
answered (the gateway waited 60 s for it, "connection refused").
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from spark_gateway import spark_server
from spark_gateway.cluster import LocalCluster
from spark_gateway.spark_server import EmbeddedSparkServer, free_port


class RepeatingOS:
    """``socket.socket`` of an OS that hands out the given ports to binds to port 0, in order."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = iter(ports)

    def socket(self) -> Any:
        ports = self.ports

        class Socket:
            def bind(self, address: tuple[str, int]) -> None:
                assert address[1] == 0
                self.port = next(ports)

            def getsockname(self) -> tuple[str, int]:
                return ("127.0.0.1", self.port)

            def close(self) -> None:
                pass

        return Socket()


def test_spark_ports_are_distinct_when_the_os_repeats_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """gRPC, the UI and the gateway's own port are three ports, whatever the OS hands out twice."""
    monkeypatch.setattr(spark_server, "socket", RepeatingOS([41000, 41000, 8765, 41001]))
    server = EmbeddedSparkServer()
    server.pick_ports(avoid={8765})
    assert (server.port, server.ui_port) == (41000, 41001)
    assert "spark.ui.port=41001" in server.command()


def test_ports_given_are_kept() -> None:
    """A port given by the caller is used as given (a restart keeps its URL)."""
    server = EmbeddedSparkServer(port=15002, ui_port=4040)
    server.pick_ports(avoid={8765})
    assert (server.port, server.ui_port) == (15002, 4040)


def test_cluster_ports_are_distinct_when_the_os_repeats_a_port(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Any) -> None:
    """The cluster's master, Connect and worker UI ports never repeat one another."""
    monkeypatch.setattr(spark_server, "socket",
                        RepeatingOS([7077, 7077, 8080, 8080, 15002, 7077, 4040, 4040, 8081, 8081, 8082]))
    cluster = LocalCluster(state_dir=tmp_path, workers=2)
    cluster._pick_ports()
    workers = [cluster._worker_command(n) for n in range(2)]
    ui_ports = [int(command[command.index("--webui-port") + 1]) for command in workers]
    assert [cluster.master_port, cluster.master_ui_port, cluster.connect_port, cluster.connect_ui_port,
            *ui_ports] == [7077, 8080, 15002, 4040, 8081, 8082]


def test_a_real_free_port_is_free_again_once_returned() -> None:
    """On the real OS: the sockets held while looking are closed (the port can be bound), and it is
    not one of ``avoid``."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        port = free_port(avoid={taken})
    assert port != taken
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
