"""The execution lifecycle: every state and every legal move, in one table.

    queued ──start──▶ running ──code_done──▶ draining ──ok/error/interrupted──▶ (terminal)
       │                 └──────────ok/error/interrupted──────────────────────▶ (terminal)
       └──interrupted──▶ interrupted

``running`` means the code is on the session's worker thread; ``draining`` means the
code is done but result streams are still open (the worker is already free for the
next execution). Terminal states are reported by the ``finished`` event.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import LifecycleError


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DRAINING = "draining"
    OK = "ok"
    ERROR = "error"
    INTERRUPTED = "interrupted"


TERMINAL = frozenset({State.OK, State.ERROR, State.INTERRUPTED})

# Everything that affects the lifecycle lives here: (from, event) -> to.
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.QUEUED, "start"): State.RUNNING,
    (State.QUEUED, "interrupted"): State.INTERRUPTED,
    (State.RUNNING, "code_done"): State.DRAINING,
    (State.RUNNING, "ok"): State.OK,
    (State.RUNNING, "error"): State.ERROR,
    (State.RUNNING, "interrupted"): State.INTERRUPTED,
    (State.DRAINING, "ok"): State.OK,
    (State.DRAINING, "error"): State.ERROR,
    (State.DRAINING, "interrupted"): State.INTERRUPTED,
}


def advance(state: State, event: str) -> State:
    """Return the state after ``event``; an illegal move is a gateway bug and raises."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise LifecycleError(f"illegal execution transition: {state} --{event}-->") from None
