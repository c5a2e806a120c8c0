"""What an execution needs of its session: the one interface between ``execution.py`` and ``session.py``.

An execution is attached to the session to receive the events that answer it, sends its
requests through it, and is detached when it ends; it never sees the session's connection,
its state or the other executions. ``Session`` implements this and hands itself to each
execution it creates, so ``execution.py`` imports nothing of ``session.py``.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from spark_gateway_protocol.messages import Request

E_contra = TypeVar("E_contra", contravariant=True)


class SessionLink(Protocol[E_contra]):
    """The session as its executions (of type ``E_contra``) see it."""

    def attach(self, execution: E_contra, /) -> None:
        """Send the execution's ``execute`` and route the events that answer it to the execution.

        A session that has already failed fails the execution at once instead.
        """

    def send(self, request: Request, /) -> None:
        """Send one request of an attached execution, after those sent before it."""

    def detach(self, execution_id: str, /) -> None:
        """The execution has ended: route nothing more to it, and send nothing of it again on a resume."""
