"""Exceptions raised by the client, built from the protocol's ``error`` events.

::

    SparkGatewayError              base of everything this package raises
    ├── QueryError                 Spark raised (code ``spark_error``): error_class, sql_state, context
    ├── PythonError                the cell's Python code raised (``python_error``): exception, traceback
    ├── RequestRefused             the gateway refused a request (unsupported, limit_exceeded, ...)
    ├── Interrupted                the execution was interrupted (by ``interrupt()`` or the gateway)
    └── GatewayConnectionError     no connection, or it was lost (also a builtin ``ConnectionError``)
        ├── SparkUnavailable       the gateway is up but its Spark Connect server is not
        ├── SessionLost            the connection dropped and the session could not be resumed
        └── ResultLost             resumed, but some of the execution's events were gone (``resumed.lost``)
"""

from __future__ import annotations

from typing import Any

from spark_gateway_protocol.errors import ErrorCode
from spark_gateway_protocol.messages import Error, LostResult, QueryContext


class SparkGatewayError(Exception):
    """Base class: ``code`` is the protocol error code when the gateway sent one."""

    def __init__(self, message: str, *, code: str | None = None, execution_id: str | None = None,
                 result: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.execution_id = execution_id
        self.result = result


class QueryError(SparkGatewayError):
    """Spark rejected or failed the query (parse, analysis, runtime)."""

    def __init__(self, message: str, *, error_class: str | None = None, sql_state: str | None = None,
                 context: list[QueryContext] | None = None, exception: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error_class = error_class
        self.sql_state = sql_state
        self.context = context or []
        self.exception = exception


class PythonError(SparkGatewayError):
    """The execution's Python code raised; ``traceback`` starts at the cell's own frames."""

    def __init__(self, message: str, *, exception: str | None = None, traceback: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.exception = exception
        self.traceback = traceback

    def __str__(self) -> str:
        return self.traceback.rstrip() if self.traceback else self.message


class RequestRefused(SparkGatewayError):
    """The gateway refused a request: ``code`` says why (``unsupported``, ``limit_exceeded``, ...)."""


class Interrupted(SparkGatewayError):
    """The execution was interrupted before it completed."""


class GatewayConnectionError(SparkGatewayError, ConnectionError):
    """The gateway cannot be reached, refused the connection, or the connection was lost."""


class SparkUnavailable(GatewayConnectionError):
    """The gateway answered, but its Spark Connect server cannot be reached."""


class SessionLost(GatewayConnectionError):
    """The connection dropped and the session could not be resumed: it is gone on the gateway.

    ``code`` is ``"resume_failed"`` when the gateway refused the resume (the session ended,
    or stayed away longer than the gateway's ``resume_grace``), ``"unauthorized"`` when it
    refused the credential, ``None`` when the gateway could not be reached in time. Open a
    new session: temp views, SQL conf and Python variables of the old one are gone.
    """

    def __init__(self, message: str, *, session_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.session_id = session_id


class ResultLost(GatewayConnectionError):
    """The session was resumed, but events of this execution were lost for good.

    They had left the gateway's replay buffer (``replay_buffer_bytes``) before the client
    came back: ``from_seq``..``to_seq`` is the gap in the session's stream, ``messages``
    counts the lost events of this execution by type, and ``results`` lists, per result,
    the row offsets ``[from_offset, to_offset)`` that are missing. The execution is failed
    (and interrupted on the gateway) rather than returning partial data.
    """

    def __init__(self, message: str, *, from_seq: int, to_seq: int, messages: dict[str, int],
                 results: list[LostResult], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.from_seq = from_seq
        self.to_seq = to_seq
        self.messages = messages
        self.results = results


def error_from_event(event: Error) -> SparkGatewayError:
    """The exception an ``error`` event stands for."""
    code = event.code or ErrorCode.INTERNAL
    message = event.message or code
    common: dict[str, Any] = {"code": code, "execution_id": event.id, "result": event.result}
    if code == ErrorCode.SPARK_ERROR:
        return QueryError(message, error_class=event.error_class, sql_state=event.sql_state,
                          context=event.context, exception=event.exception, **common)
    if code == ErrorCode.PYTHON_ERROR:
        return PythonError(message, exception=event.exception, traceback=event.traceback, **common)
    if code == ErrorCode.SPARK_UNAVAILABLE:
        return SparkUnavailable(message, **common)
    if code == ErrorCode.SHUTTING_DOWN:
        return GatewayConnectionError(message, **common)
    if event.request is not None:
        return RequestRefused(message, **common)
    return SparkGatewayError(message, **common)
