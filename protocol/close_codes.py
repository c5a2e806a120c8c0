"""WebSocket close codes of protocol v1 (RFC 6455, section 7.4), and what each tells the peer.

docs/protocol.md ("Close codes the gateway sends") is the prose of this module. A close code
decides one thing: whether the session behind the connection can be resumed.
"""

from __future__ import annotations

# ---------------------------------------------------------------- sent by the gateway

CLOSE_SESSION_ENDED = 1000  # the session is over (e.g. idle timeout): do not resume
CLOSE_GOING_AWAY = 1001  # the gateway is shutting down (a `shutting_down` error came first)
CLOSE_REFUSED = 1008  # a session could not be opened or resumed (an `error` with seq 0 said why)
CLOSE_MESSAGE_TOO_BIG = 1009  # a client frame beyond the websocket server's size limit; the session is kept
CLOSE_TRY_AGAIN = 1013  # the gateway is full or draining: open a session later, with backoff
CLOSE_TAKEN_OVER = 4001  # the session was resumed on another connection: this one must stop
# This connection fell further behind the session's stream than its buffer allows (it did not read
# fast enough); the session goes on: join again (or resume) with the last seq received.
CLOSE_TOO_SLOW = 4002

# After one of these the session cannot go on over a new connection: resuming it is pointless.
# (1013 refuses a new connection; a client opening one retries it with backoff.)
FINAL = frozenset({CLOSE_SESSION_ENDED, CLOSE_GOING_AWAY, CLOSE_REFUSED, CLOSE_TRY_AGAIN, CLOSE_TAKEN_OVER})

# ---------------------------------------------------------------- sent by a client

CLOSE_PROTOCOL_ERROR = 1002  # the client read a frame that breaks the protocol
CLOSE_ABANDONED = 4000  # the client gave up on a dead path and will resume (any 4000-4999 does)

# A client that closes with one of these is done with its session (normal, going away, or it
# cannot go on with this stream): the gateway ends the session at once. No close frame
# (1005/1006: a dropped network, a crashed client), 1011-1014 or an application code
# 4000-4999 keeps the session for a resume. So do 1007 and 1009: the gateway's websocket
# layer closes with them when it refuses a client frame (not UTF-8; over the 16 MiB frame
# limit) and reports its own close to the app exactly as a client's; a refused frame must
# not end the session.
CLIENT_DONE = frozenset({1000, 1001, 1002, 1003, 1008, 1010})

# ---------------------------------------------------------------- never sent

CLOSE_ABNORMAL = 1006  # what a peer reports when the connection dropped without a close frame
