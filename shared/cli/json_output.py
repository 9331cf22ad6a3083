"""The CLI's `--json` output: the bytes of `json.dump(doc, indent=2, ensure_ascii=False)`, written fast and lazily.

`pairs --json` on a 20,000-VNet estate prints half a million pairs (about 1.2 GB). The standard library's
encoder falls back to pure Python whenever `indent` is set, which took most of a minute; orjson (compiled) writes
the same bytes in a fraction of that. A top-level value may also be given as an iterator: it is printed as the
list of what it yields, encoded in batches as they are made, so the pairs are never all held at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any, BinaryIO, TextIO

import orjson

_BATCH = 2000  # list items encoded per call


def _indented(value: Any, depth: int) -> bytes:
    """`value` as json.dumps(indent=2, ensure_ascii=False) would print it `depth` levels deep."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        # What orjson refuses and the standard library accepts (integers past 64 bits, lone surrogates from a
        # "\ud800" escape in a snapshot): the same document, with non-ASCII escaped so the bytes are valid UTF-8.
        text = json.dumps(value, indent=2).encode("ascii")
    return text.replace(b"\n", b"\n" + b"  " * depth) if depth else text


def json_chunks(doc: Mapping[str, Any]) -> Iterator[bytes]:
    """The document in pieces; a value that is an iterator is printed as the list of what it yields."""
    if not doc:
        yield b"{}\n"
        return
    for i, (key, value) in enumerate(doc.items()):
        head = (b"{\n  " if i == 0 else b",\n  ") + _indented(key, 0) + b": "
        if not isinstance(value, Iterator):
            yield head + _indented(value, 1)
            continue
        yield head + b"["
        separator = b"\n"
        while batch := list(islice(value, _BATCH)):
            # The batch as a list one level deep, b"[\n    {...},\n    {...}\n  ]", less its brackets.
            yield separator + _indented(batch, 1)[2:-4]
            separator = b",\n"
        yield b"]" if separator == b"\n" else b"\n  ]"
    yield b"\n}\n"


def print_json(doc: Mapping[str, Any], stream: TextIO) -> None:
    """Write the document to a text stream, through its byte buffer when it has one (sys.stdout does)."""
    raw: BinaryIO | None = getattr(stream, "buffer", None)
    if raw is None:
        for chunk in json_chunks(doc):
            stream.write(chunk.decode("utf-8"))
        return
    stream.flush()
    for chunk in json_chunks(doc):
        raw.write(chunk)
    raw.flush()
