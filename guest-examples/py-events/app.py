"""py-events: a CloudEvents handler that validates and transforms an event.

It accepts both CloudEvents HTTP modes:
  - binary: attributes in `ce-*` headers, the body is the event's data;
  - structured: `content-type: application/cloudevents+json`, the body is
    the whole event as JSON (`data`, or `data_base64` for bytes).

Answers:
  200  the transformed event, structured (application/cloudevents+json):
       `type` upper-cased, JSON data normalized (object keys lower-cased,
       strings trimmed), plus `wispreceivedmode` = binary | structured
  400  {"error": ...} naming every missing required attribute
       (specversion, id, source, type), a wrong specversion, or bad JSON
  500  an event of type `com.example.poison` raises: the instance traps,
       Wisp answers 500 and the sender may retry
"""

import base64
import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

REQUIRED = ("specversion", "id", "source", "type")
STRUCTURED = "application/cloudevents+json"


class BadEvent(Exception):
    """A client error: becomes a 400 with this message."""


def read_body(request: IncomingRequest) -> bytes:
    """Reads the whole request body, however large, in 64 KiB chunks."""
    body = request.consume()
    chunks = []
    with body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(65536))
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise
    IncomingBody.finish(body)
    return b"".join(chunks)


def send(response_out: ResponseOutparam, status: int, content_type: str, data: bytes) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", content_type.encode())]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with body.write() as stream:
        # blocking_write_and_flush takes at most 4096 bytes per call.
        for at in range(0, len(data), 4096):
            stream.blocking_write_and_flush(data[at : at + 4096])
    OutgoingBody.finish(body, None)


def parse_json(raw: bytes, what: str):
    try:
        return json.loads(raw)
    except ValueError as e:
        raise BadEvent(f"{what} is not valid JSON: {e}") from None


def decode(headers: dict, raw: bytes) -> tuple[dict, str]:
    """The event's attributes and data as a dict, and the mode it came in."""
    content_type = headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == STRUCTURED:
        event = parse_json(raw, "structured event")
        if not isinstance(event, dict):
            raise BadEvent("structured event must be a JSON object")
        if "data_base64" in event:
            event["data"] = base64.b64decode(event.pop("data_base64")).decode("utf-8", "replace")
        missing = [name for name in REQUIRED if not event.get(name)]
        mode = "structured"
    else:
        event = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        if content_type:
            event["datacontenttype"] = content_type
        if raw:
            is_json = "json" in content_type
            event["data"] = parse_json(raw, "data") if is_json else raw.decode("utf-8", "replace")
        missing = ["ce-" + name for name in REQUIRED if not event.get(name)]
        mode = "binary"
    if missing:
        raise BadEvent("missing required attribute(s): " + ", ".join(missing))
    if event["specversion"] != "1.0":
        raise BadEvent(f"unsupported specversion {event['specversion']!r}; expected \"1.0\"")
    return event, mode


def normalize(value):
    """Object keys lower-cased, strings trimmed, all the way down."""
    if isinstance(value, dict):
        return {str(k).strip().lower(): normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        return value.strip()
    return value


def transform(event: dict, mode: str) -> dict:
    if event["type"] == "com.example.poison":
        # Uncaught on purpose: the host answers 500 and stays healthy.
        raise RuntimeError(f"cannot process poison event {event['id']}")
    out = dict(event)
    out["type"] = event["type"].upper()
    if "data" in event:
        out["data"] = normalize(event["data"])
    out["wispreceivedmode"] = mode
    return out


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        headers = {name.lower(): value.decode("utf-8", "replace") for name, value in request.headers().entries()}
        try:
            event, mode = decode(headers, read_body(request))
        except BadEvent as e:
            error = json.dumps({"error": str(e)}).encode()
            send(response_out, 400, "application/json", error)
            return
        print(f"py-events: id={event['id']} type={event['type']} mode={mode}")
        result = json.dumps(transform(event, mode), sort_keys=True).encode()
        send(response_out, 200, STRUCTURED, result)
