"""The contract between clients and the gateway: messages, codec, lifecycle. No I/O, no pyspark."""

from .codec import (
    DEFAULT_MAX_MESSAGE_BYTES,
    decode_arrow_frame,
    decode_event,
    decode_request,
    encode_arrow_frame,
    encode_event,
    encode_request,
    event_to_dict,
)
from .errors import ErrorCode, LifecycleError, ProtocolError
from .messages import *  # noqa: F403
from .messages import PROTOCOL_VERSION

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "ErrorCode",
    "LifecycleError",
    "ProtocolError",
    "decode_arrow_frame",
    "decode_event",
    "encode_arrow_frame",
    "decode_request",
    "encode_event",
    "encode_request",
    "event_to_dict",
]
