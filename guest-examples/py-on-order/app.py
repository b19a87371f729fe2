"""py-on-order: processes the com.example.order.created events that order-api
publishes to the `orders` topic; the Python twin of on-order.

Wisp delivers each event as a CloudEvents binary-mode request: attributes in
ce-* headers (ce-deliveryattempt = 1, 2, ... on redeliveries, same ce-id), the
data in the body. Answers:
  204  a valid order {"id": 1, "item": "tea", "quantity": 2}: one log line;
       events of other types are acknowledged and ignored
  500  a poison order ({"poison": true}, quantity outside 1..=100, data that
       is not an order): Wisp redelivers it, then dead-letters it
  400  a request without the required ce-* headers
"""

import json
import sys
from urllib.parse import unquote

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

ORDER_CREATED = "com.example.order.created"
REQUIRED = ("specversion", "id", "source", "type")


class Poison(Exception):
    """An order that cannot be processed: answered 500, so Wisp retries it."""


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


def send(response_out: ResponseOutparam, status: int, text: str = "") -> None:
    headers = [("content-type", b"text/plain; charset=utf-8")] if text else []
    response = OutgoingResponse(Fields.from_list(headers))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    if text:
        with body.write() as stream:
            # One call writes at most 4096 bytes; these messages are far smaller.
            stream.blocking_write_and_flush(text.encode()[:4096])
    OutgoingBody.finish(body, None)


def attributes(request: IncomingRequest) -> dict:
    """The event's attributes from its ce-* headers, percent-decoded as the HTTP binding asks."""
    event = {}
    for name, value in request.headers().entries():
        name = name.lower()
        if name.startswith("ce-"):
            event[name[3:]] = unquote(value.decode("utf-8", "replace"))
    return event


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_order(data: bytes) -> dict:
    try:
        order = json.loads(data)
    except ValueError as e:
        raise Poison(f"data is not JSON: {e}") from None
    if not isinstance(order, dict):
        raise Poison("data is not a JSON object")
    if order.get("poison") is True:
        raise Poison("poison order")
    if not is_int(order.get("id")) or order["id"] <= 0:
        raise Poison("`id` is not a positive integer")
    if not isinstance(order.get("item"), str) or not order["item"].strip():
        raise Poison("`item` is not a non-empty string")
    if not is_int(order.get("quantity")):
        raise Poison("`quantity` is not an integer")
    if not 1 <= order["quantity"] <= 100:
        raise Poison(f"quantity {order['quantity']} is outside 1..=100")
    return order


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        event = attributes(request)
        data = read_body(request)
        missing = ["ce-" + name for name in REQUIRED if not event.get(name)]
        if missing:
            send(response_out, 400, "missing required CloudEvent header(s): " + ", ".join(missing) + "\n")
            return
        if event["type"] != ORDER_CREATED:
            print(f"py-on-order: ignoring event {event['id']} of type {event['type']}")
            send(response_out, 204)
            return
        try:
            order = parse_order(data)
        except Poison as e:
            print(f"py-on-order: event {event['id']} failed: order refused: {e}", file=sys.stderr)
            send(response_out, 500, f"event {event['id']} failed: order refused: {e}\n")
            return
        attempt = event.get("deliveryattempt", "?")
        print(
            f"py-on-order: order {order['id']} item={json.dumps(order['item'])} "
            f"quantity={order['quantity']} ce-id={event['id']} attempt={attempt}"
        )
        send(response_out, 204)
