"""A thin test client over a real websocket: sends raw frames, checks every event against the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import orjson
from jsonschema import Draft202012Validator
from websockets.asyncio.client import ClientConnection, connect

from spark_gateway_protocol import PROTOCOL_VERSION, decode_arrow_frame

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "protocol" / "schema"
VALIDATORS = {
    p.stem: Draft202012Validator(json.loads(p.read_text())) for p in sorted(SCHEMA_DIR.glob("*.json"))
}


def validate(message: dict[str, Any]) -> None:
    """Raise if ``message`` does not match the JSON Schema of its type."""
    VALIDATORS[message["type"]].validate(message)


def decode_frame(frame: str | bytes) -> dict[str, Any]:
    """One gateway frame as a schema-checked event (an arrow-rows page keeps its ``payload``)."""
    if isinstance(frame, bytes):
        header, payload = decode_arrow_frame(frame)
        validate(header)
        return {**header, "payload": bytes(payload)}
    event = orjson.loads(frame)
    validate(event)
    return event  # type: ignore[no-any-return]


class Client:
    """One session seen from the client side; remembers every event it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.session: dict[str, Any] = {}
        self._next_seq = 1

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            validate(message)  # tests send valid requests unless they send raw text
            message = orjson.dumps(message).decode()
        await self.ws.send(message)

    async def recv(self, timeout: float = 60) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            event = decode_frame(await self.ws.recv())
        assert event["seq"] == self._next_seq, f"seq {event['seq']} != expected {self._next_seq}"
        self._next_seq += 1
        self.events.append(event)
        return event

    async def recv_until(self, predicate: Any, timeout: float = 60) -> list[dict[str, Any]]:
        """Events up to and including the first matching ``predicate``."""
        got = []
        with anyio.fail_after(timeout):
            while True:
                event = await self.recv(timeout)
                got.append(event)
                if predicate(event):
                    return got

    async def wait_for(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        """The first event, already received or still to come, that matches ``predicate``."""
        for event in self.events:
            if predicate(event):
                return event
        return (await self.recv_until(predicate, timeout))[-1]

    async def execute(self, code: str, *, id: str, language: str = "sql", **fields: Any) -> None:
        await self.send({"type": "execute", "id": id, "code": code, "language": language, **fields})

    async def run(self, code: str, *, id: str, language: str = "sql", all_rows: bool = True,
                  timeout: float = 120, **fields: Any) -> list[dict[str, Any]]:
        """Execute and collect events until ``finished``, granting credit for every row."""
        await self.execute(code, id=id, language=language, **fields)
        got = []
        with anyio.fail_after(timeout):
            while True:
                event = await self.recv(timeout)
                if event.get("id") != id:
                    continue
                got.append(event)
                if all_rows and event["type"] in ("rows", "arrow-rows") and not event["last"]:
                    count = event["count"] if "count" in event else len(event["rows"])  # arrow, or columns
                    await self.send({"type": "stream-rows", "id": id, "result": event["result"],
                                     "max_rows": count or 1})
                if event["type"] == "finished":
                    return got

    async def close(self) -> None:
        await self.ws.close()


def rows_of(events: list[dict[str, Any]], result: int = 0) -> list[list[Any]]:
    """A result's rows, from pages in either layout (``columns`` pages zipped into rows)."""
    return [row for e in events if e["type"] == "rows" and e["result"] == result for row in page_rows(e)]


def page_rows(page: dict[str, Any]) -> list[list[Any]]:
    if "columns" not in page:
        return page["rows"]  # type: ignore[no-any-return]
    assert all(len(column) == page["count"] for column in page["columns"]), page
    return [list(row) for row in zip(*page["columns"], strict=True)] if page["columns"] else [[]] * page["count"]


def arrow_table(events: list[dict[str, Any]], result: int = 0) -> Any:
    """The Arrow table that a result's binary frames carry, read as one IPC stream."""
    import pyarrow as pa

    payload = b"".join(e["payload"] for e in events if e["type"] == "arrow-rows" and e["result"] == result)
    return pa.ipc.open_stream(payload).read_all()


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


class open_client:
    """``async with open_client(url) as client``: connects and reads the ``session`` event."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        self.kwargs = kwargs

    async def __aenter__(self) -> Client:
        self._cm = connect(self.url, subprotocols=[PROTOCOL_VERSION], **{"max_size": None, **self.kwargs})
        ws = await self._cm.__aenter__()
        client = Client(ws)
        client.session = await client.recv()
        assert client.session["type"] == "session"
        return client

    async def __aexit__(self, *exc: Any) -> None:
        await self._cm.__aexit__(*exc)
