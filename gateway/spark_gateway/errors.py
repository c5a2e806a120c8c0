"""The gateway's own exceptions, all in one place.

The tree (``except GatewayError`` catches everything the gateway raises on purpose)::

    Exception
    └── GatewayError
        ├── SparkServerError     (also a RuntimeError) the embedded Spark Connect server did not start
        ├── ClusterError         (also a RuntimeError) the local standalone cluster did not start
        ├── ResumeError          a client's resume cannot continue its session's stream
        └── StdinUnavailable     (also a RuntimeError) a cell read standard input

    KeyboardInterrupt
    └── ExecutionInterrupted     raised in a cell's code by an interrupt

:class:`ExecutionInterrupted` stays outside the root on purpose: it must not be an
:class:`Exception`, or ``except Exception`` in the user's code would swallow an interrupt.
The other classes keep their earlier bases too (``RuntimeError`` where they had it), so
code that caught those still does.

Where each is raised: :mod:`~spark_gateway.spark_server`, :mod:`~spark_gateway.cluster`,
:mod:`~spark_gateway.outbox`, :mod:`~spark_gateway.capture` and :mod:`~spark_gateway.worker`;
those modules re-export them under their old names. What a client is told is another matter:
failures of the client's own requests and code become the protocol's typed ``error`` event
(:mod:`spark_gateway_protocol.errors`, whose ``ProtocolError`` and ``LifecycleError`` belong
to the protocol package and are not under this root).
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of the exceptions the gateway raises."""


class SparkServerError(GatewayError, RuntimeError):
    """The embedded Spark Connect server could not be started."""


class ClusterError(GatewayError, RuntimeError):
    """The local cluster could not be started, or its state dir is in use."""


class ResumeError(GatewayError):
    """The stream cannot be resumed from the ``seq`` the client gave."""


class StdinUnavailable(GatewayError, RuntimeError):
    """Code run for a client read standard input: there is nobody to type it.

    Its name reaches the client (the ``exception`` field of a ``python_error``).
    """


class ExecutionInterrupted(KeyboardInterrupt):
    """Raised in the worker thread by an interrupt.

    A KeyboardInterrupt, so ``except Exception`` in user code cannot swallow it and
    pyspark, on seeing it during an operation, interrupts that operation on the server.
    """
