"""The protocol's error vocabulary: stable error codes and the one exception decoding raises.

Exception tree::

    ProtocolError            a client frame broke the contract (the peer's fault);
                             carries the code and, when known, the request id and type.
    LifecycleError           the gateway tried an illegal execution state move (our bug).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable machine-readable codes carried by every ``error`` event."""

    # The client's frame itself is wrong.
    BAD_MESSAGE = "bad_message"  # not JSON, not an object, or a field is missing/wrong
    UNKNOWN_TYPE = "unknown_type"  # ``type`` names no client message
    MESSAGE_TOO_LARGE = "message_too_large"  # frame beyond the session's max_message_bytes
    # The frame is well formed but does not fit the session's state.
    DUPLICATE_ID = "duplicate_id"  # execute reused an id already used in this session
    UNKNOWN_EXECUTION = "unknown_execution"  # no execution with that id
    UNKNOWN_RESULT = "unknown_result"  # the execution has no result with that number
    INVALID_STATE = "invalid_state"  # e.g. rows requested from a result that has ended
    UNSUPPORTED = "unsupported"  # a language or format this gateway does not offer
    LIMIT_EXCEEDED = "limit_exceeded"  # a gateway limit refused the request
    # The execution failed.
    SPARK_ERROR = "spark_error"  # Spark raised (analysis, parse, runtime, ...)
    PYTHON_ERROR = "python_error"  # the user's Python code raised
    SPARK_UNAVAILABLE = "spark_unavailable"  # the Spark Connect server cannot be reached
    SPARK_SESSION_RESET = "spark_session_reset"  # a new Spark session replaced a lost one (a notice)
    SHUTTING_DOWN = "shutting_down"  # the gateway is stopping; running work is interrupted
    # An editor request (complete, inspect, catalog).
    TIMEOUT = "timeout"  # Spark did not answer it within the gateway's deadline; nothing changed
    # The session itself.
    RESUME_FAILED = "resume_failed"  # no session to resume (ended, expired) or last_seq unusable
    IDLE_TIMEOUT = "idle_timeout"  # the session was idle too long and has ended
    # HTTP downloads (GET /download): the error body of a refused or failed download.
    UNAUTHORIZED = "unauthorized"  # 401: no valid credential and no signed link
    FORBIDDEN = "forbidden"  # 403: another credential's session, or a forged link
    LINK_EXPIRED = "link_expired"  # 403: a signed link past its expiry
    UNKNOWN_SESSION = "unknown_session"  # 404: no such session (ended, or another gateway's)
    INTERNAL = "internal"  # a gateway bug; the message says what happened


class ProtocolError(Exception):
    """A client message that breaks the protocol; answered with an ``error`` event.

    ``request_id`` and ``request_type`` echo what could be read of the offending
    message, so a client can tell which of its requests was refused.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: str | None = None,
        request_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.request_type = request_type


class LifecycleError(RuntimeError):
    """An execution was moved along a transition the lifecycle table forbids."""
