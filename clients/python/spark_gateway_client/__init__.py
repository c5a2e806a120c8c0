"""Python client for spark-gateway: run SQL and Python on Spark over one websocket, stream the rows.

::

    import asyncio
    from spark_gateway_client import connect

    async def main():
        async with connect("ws://localhost:8765/ws") as session:
            table = await session.sql("SELECT id, id * 2 AS twice FROM range(1000000)").to_arrow()
            async for rows in session.sql("SELECT * FROM range(10)"):
                print(rows)

    asyncio.run(main())

See ``clients/python/README.md`` for the whole API, the sync wrapper and the CLI.
"""

from spark_gateway_protocol.messages import PROTOCOL_VERSION, Column, Progress, QueryContext, SessionInfo, StageProgress

from .batch import RowBatch
from .errors import (
    GatewayConnectionError,
    Interrupted,
    PythonError,
    QueryError,
    RequestRefused,
    ResultLost,
    SessionLost,
    SparkGatewayError,
    SparkUnavailable,
)
from .execution import Execution, ResultStream
from .session import DEFAULT_URL, Session, connect
from .sync import SyncExecution, SyncResult, SyncSession, connect_sync

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "PROTOCOL_VERSION",
    "Column",
    "Execution",
    "GatewayConnectionError",
    "Interrupted",
    "Progress",
    "PythonError",
    "QueryContext",
    "QueryError",
    "RequestRefused",
    "ResultLost",
    "ResultStream",
    "RowBatch",
    "Session",
    "SessionLost",
    "SessionInfo",
    "SparkGatewayError",
    "SparkUnavailable",
    "StageProgress",
    "SyncExecution",
    "SyncResult",
    "SyncSession",
    "connect",
    "connect_sync",
]
