"""py-cart: the cart API of guest-examples/cart, in Python. Instances are
fresh for every request, so the carts live in the key-value store `carts`
(wasi:keyvalue), and the currency and the payment key come from wasi:config
(a `config` value and a `[[secret]]`).

  GET    .../cart/<user>           -> 200 {"user","items":{"tea":2},"currency"}
  POST   .../cart/<user>           -> 200 the cart, after adding {"item":"tea","quantity":2}
  DELETE .../cart/<user>           -> 200 the emptied cart
  POST   .../cart/<user>/checkout  -> 200 {"order":N,...}: N from an atomic increment,
                                      the cart emptied; 409 when it is empty,
                                      503 without the secret `payment-key`
  store not granted -> 403; bad input -> 400; wrong method -> 405; else -> 404
  (errors are {"error":"..."})

Adding is a get then a set, not atomic: two concurrent adds to one cart may
lose one. The order counter is atomic.
"""

import json
import re

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, wasi_config_store, wasi_keyvalue_store
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Delete,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

STORE = "carts"
USER = re.compile(r"[A-Za-z0-9_-]{1,64}")


class HttpError(Exception):
    """Becomes a JSON error response with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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


def send_json(response_out: ResponseOutparam, status: int, value) -> None:
    data = json.dumps(value).encode()
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with body.write() as stream:
        # One call writes at most 4096 bytes.
        for at in range(0, len(data), 4096):
            stream.blocking_write_and_flush(data[at : at + 4096])
    OutgoingBody.finish(body, None)


def kv(call):
    """Runs a wasi:keyvalue call, turning its error variant into an HttpError."""
    try:
        return call()
    except Err as e:
        error = e.value
        if isinstance(error, (wasi_keyvalue_store.Error_AccessDenied, wasi_keyvalue_store.Error_NoSuchStore)):
            raise HttpError(403, f"this function is not granted the key-value store `{STORE}`") from None
        if isinstance(error, wasi_keyvalue_store.Error_Other):
            raise HttpError(500, f"the store failed: {error.value}") from None
        raise


def config(key: str, fallback=None):
    """A wasi:config value, or `fallback` when it is not set."""
    try:
        value = wasi_config_store.get(key)
    except Err as e:
        raise HttpError(500, f"config failed: {e.value}") from None
    return fallback if value is None else value


def load_items(bucket, user: str) -> dict:
    """The cart's items, {item: quantity}."""
    data = kv(lambda: bucket.get(f"cart:{user}"))
    return {} if data is None else json.loads(data)


def parse_item(data: bytes):
    """Reads and checks the item to add."""
    try:
        value = json.loads(data)
    except ValueError as e:
        raise HttpError(400, f"bad JSON: {e}") from None
    item = value.get("item") if isinstance(value, dict) else None
    item = item.strip() if isinstance(item, str) else ""
    if not item:
        raise HttpError(400, "field `item` (a non-empty string) is required")
    quantity = value.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 100:
        raise HttpError(400, "field `quantity` must be an integer from 1 to 100")
    return item, quantity


def route(request: IncomingRequest, path: str):
    segments = [s for s in path.split("?")[0].split("/") if s]
    rest = segments[len(segments) - segments[::-1].index("cart") :] if "cart" in segments else []
    if not 1 <= len(rest) <= 2 or rest[1:] not in ([], ["checkout"]):
        raise HttpError(404, f"no route for {path}")
    user, checkout = rest[0], len(rest) == 2
    if not USER.fullmatch(user):
        raise HttpError(400, "the user must be 1-64 letters, digits, `-` or `_`")
    currency = config("currency", "USD")
    bucket = kv(lambda: wasi_keyvalue_store.open(STORE))
    key = f"cart:{user}"
    method = request.method()

    def cart(items):
        return {"user": user, "items": items, "currency": currency}

    if checkout:
        if not isinstance(method, Method_Post):
            raise HttpError(405, "method not allowed; use POST")
        payment_key = config("payment-key")
        if payment_key is None:
            raise HttpError(503, "payments are not configured: grant this function the secret `payment-key`")
        items = load_items(bucket, user)
        if not items:
            raise HttpError(409, "the cart is empty")
        order = kv(lambda: atomics.increment(bucket, "orders", 1))
        kv(lambda: bucket.delete(key))
        # Only the key's last four characters ever leave the function.
        return 200, {"order": order, **cart(items), "payment_key": "\u2026" + payment_key[-4:]}
    if isinstance(method, Method_Get):
        return 200, cart(load_items(bucket, user))
    if isinstance(method, Method_Post):
        item, quantity = parse_item(read_body(request))
        items = load_items(bucket, user)
        items[item] = items.get(item, 0) + quantity
        kv(lambda: bucket.set(key, json.dumps(items).encode()))
        return 200, cart(items)
    if isinstance(method, Method_Delete):
        kv(lambda: bucket.delete(key))
        return 200, cart({})
    raise HttpError(405, "method not allowed; use GET, POST or DELETE")


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        try:
            status, value = route(request, path)
        except HttpError as e:
            status, value = e.status, {"error": str(e)}
        send_json(response_out, status, value)
