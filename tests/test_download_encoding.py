"""Fast tier: signed download links and the file encodings of whole-result downloads (no Spark)."""

from __future__ import annotations

import csv
import datetime
import decimal
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gateway import download
from spark_gateway.links import LinkCheck, LinkSigner, Target
from spark_gateway_protocol.codec import decode_request
from spark_gateway_protocol.errors import ProtocolError
from spark_gateway_protocol.messages import Download
from tests.wsclient import validate

TARGET = Target("6f1c2a9e-8f3e-4c7e-9a57-5a8d3c2b1e10", "cell-1", 0, "parquet")


def _params(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(url).query))


def test_a_signed_link_is_valid_until_it_expires() -> None:
    now = [1_000_000.0]
    signer = LinkSigner(300, clock=lambda: now[0])
    url = signer.url(TARGET)
    assert url.startswith("/download?") and "token" not in url
    q = _params(url)
    assert q["expires"] == "1000300"
    target = download.parse_target(q)
    assert target == TARGET
    assert signer.check(target, q["expires"], q["sig"]) is LinkCheck.VALID
    now[0] = 1_000_300.0
    assert signer.check(target, q["expires"], q["sig"]) is LinkCheck.EXPIRED


@pytest.mark.parametrize("change", [
    {"result": "1"}, {"format": "csv"}, {"execution": "cell-2"}, {"expires": "9999999999"}, {"sig": "AAAA"},
    {"session": "00000000-0000-0000-0000-000000000000"},
])
def test_a_link_with_any_parameter_changed_is_forged(change: dict[str, str]) -> None:
    signer = LinkSigner(300)
    q = {**_params(signer.url(TARGET)), **change}
    assert signer.check(download.parse_target(q), q["expires"], q["sig"]) is LinkCheck.FORGED


def test_another_gateways_link_is_forged_and_missing_parts_too() -> None:
    q = _params(LinkSigner(300).url(TARGET))
    other = LinkSigner(300)
    assert other.check(TARGET, q["expires"], q["sig"]) is LinkCheck.FORGED
    assert other.check(TARGET, None, q["sig"]) is LinkCheck.FORGED
    assert other.check(TARGET, "12x", q["sig"]) is LinkCheck.FORGED


@pytest.mark.parametrize("query", [
    {}, {"session": "s", "execution": "e"}, {"session": "s", "execution": "e", "result": "-1"},
    {"session": "s", "execution": "e", "result": "0", "format": "xlsx"},
    {"session": "s" * 200, "execution": "e", "result": "0"},
])
def test_malformed_download_queries_are_refused_with_400(query: dict[str, str]) -> None:
    with pytest.raises(download.Refused) as caught:
        download.parse_target(query)
    assert caught.value.status == 400 and caught.value.code == "bad_message"


def test_the_download_request_decodes_and_checks_its_format() -> None:
    assert decode_request('{"type":"download","id":"e","result":2}') == Download("e", 2, "parquet")
    validate({"type": "download", "id": "e", "result": 2, "format": "arrow"})
    with pytest.raises(ProtocolError) as caught:
        decode_request('{"type":"download","id":"e","result":0,"format":"xlsx"}')
    assert caught.value.code == "bad_message" and caught.value.request_type == "download"


SCHEMA = pa.schema([
    ("i", pa.int64()), ("d", pa.float64()), ("s", pa.string()), ("b", pa.bool_()),
    ("ts", pa.timestamp("us", tz="UTC")), ("dt", pa.date32()), ("dec", pa.decimal128(10, 2)),
    ("l", pa.list_(pa.int32())), ("m", pa.struct([("x", pa.string())])), ("bin", pa.binary()),
])


def _batch() -> pa.RecordBatch:
    return pa.record_batch([
        pa.array([1, None, 3]), pa.array([1.5, None, -0.25]), pa.array(['a,b', 'q"x', "line\nbreak"]),
        pa.array([True, None, False]),
        pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5), None, datetime.datetime(1999, 12, 31, 23, 59, 59)],
                 pa.timestamp("us", tz="UTC")),
        pa.array([datetime.date(2024, 1, 2), None, datetime.date(1970, 1, 1)]),
        pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("-2.00")], pa.decimal128(10, 2)),
        pa.array([[1, 2], None, []], pa.list_(pa.int32())),
        pa.array([{"x": "y"}, None, {"x": None}], pa.struct([("x", pa.string())])),
        pa.array([b"ab", None, b""]),
    ], schema=SCHEMA)


def test_csv_quotes_where_needed_and_writes_other_types_as_the_notebook_shows_them() -> None:
    text = download.encode_all("csv", [_batch()], SCHEMA).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == SCHEMA.names
    assert rows[1][:4] == ["1", "1.5", "a,b", "true"]
    assert rows[1][4] == "2024-01-02T03:04:05.000000Z" and rows[1][5] == "2024-01-02" and rows[1][6] == "1.50"
    assert rows[1][7] == "[1,2]" and rows[1][8] == '{"x":"y"}'
    assert rows[2][:4] == ["", "", 'q"x', ""] and rows[2][7:9] == ["", ""]  # null: an empty field
    assert rows[3][2] == "line\nbreak" and rows[3][7] == "[]" and rows[3][8] == '{"x":null}'
    assert text.startswith("i,d,s,b,") and text.count("\r\n") >= 3 and len(rows) == 4


def test_csv_of_an_empty_result_is_its_header() -> None:
    assert download.encode_all("csv", [], pa.schema([("a b", pa.int64()), ('q"', pa.string())])) == b'a b,"q"""\r\n'


def test_parquet_row_groups_are_large_not_one_per_batch() -> None:
    schema = pa.schema([("id", pa.int64())])
    batches = [pa.record_batch([pa.array(range(i * 1000, i * 1000 + 1000))], schema=schema) for i in range(25)]
    pipe = download.Pipe()
    encoder = download.ParquetEncoder(schema, pipe, group_rows=10_000)
    for b in batches:
        encoder.add(b)
    encoder.finish()
    f = pq.ParquetFile(io.BytesIO(pipe.take()))
    assert [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] == [10_000, 10_000, 5_000]
    assert f.read().column("id").to_pylist() == list(range(25_000))


def test_parquet_row_groups_end_at_the_byte_bound_too() -> None:
    schema = pa.schema([("s", pa.string())])
    batch = pa.record_batch([pa.array(["x" * 1000] * 100)], schema=schema)  # ~100 KB
    pipe = download.Pipe()
    encoder = download.ParquetEncoder(schema, pipe, group_bytes=250_000)
    for _ in range(5):
        encoder.add(batch)
    encoder.finish()
    f = pq.ParquetFile(io.BytesIO(pipe.take()))
    assert [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] == [300, 200]


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_parquet_and_arrow_files_read_back_as_the_batches(fmt: str) -> None:
    data = download.encode_all(fmt, [_batch(), _batch()], SCHEMA)
    table = pq.read_table(io.BytesIO(data)) if fmt == "parquet" else pa.ipc.open_stream(data).read_all()
    assert table.equals(pa.Table.from_batches([_batch(), _batch()]))


def test_a_download_comes_in_chunks_of_about_a_megabyte() -> None:
    schema = pa.schema([("s", pa.string())])
    batches = iter([pa.record_batch([pa.array(["y" * 100] * 5000)], schema=schema)] * 10)  # ~5 MB
    encoding = download.Encoding("arrow", schema, lambda: next(batches, None))
    sizes = []
    while (chunk := encoding.next_chunk()) is not None:
        sizes.append(len(chunk))
    assert len(sizes) >= 3 and all(s >= download.CHUNK_BYTES for s in sizes[:-1]) and encoding.rows == 50_000
