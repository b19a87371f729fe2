// js-cart: the cart API of guest-examples/cart, in JavaScript. Instances are
// fresh for every request, so the carts live in the key-value store `carts`
// (wasi:keyvalue), and the currency and the payment key come from
// wasi:config (a `config` value and a `[[secret]]`).
//
//   GET    …/cart/<user>           → 200 {"user","items":{"tea":2},"currency"}
//   POST   …/cart/<user>           → 200 the cart, after adding {"item":"tea","quantity":2}
//   DELETE …/cart/<user>           → 200 the emptied cart
//   POST   …/cart/<user>/checkout  → 200 {"order":N,…}: N from an atomic increment,
//                                    the cart emptied; 409 when it is empty,
//                                    503 without the secret `payment-key`
//   store not granted → 403; bad input → 400; wrong method → 405; else → 404
//   (errors are {"error":"…"})
//
// Adding is a get then a set, not atomic: two concurrent adds to one cart
// may lose one. The order counter is atomic.
import { Fields, IncomingBody, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';
import { open } from 'wasi:keyvalue/store@0.2.0-draft';
import { increment } from 'wasi:keyvalue/atomics@0.2.0-draft';
import { get as getConfig } from 'wasi:config/store@0.2.0-rc.1';

const STORE = 'carts';
const USER = /^[A-Za-z0-9_-]{1,64}$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An error that becomes a JSON error response with its status. */
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Reads the whole request body (any size) as text. */
function readText(request) {
  const body = request.consume();
  const stream = body.stream();
  const chunks = [];
  for (;;) {
    try {
      chunks.push(stream.blockingRead(65536n));
    } catch (e) {
      if (e.payload?.tag === 'closed') break; // end of the body
      throw e;
    }
  }
  stream[Symbol.dispose]();
  IncomingBody.finish(body);
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return decoder.decode(all);
}

/** Sends `value` as a JSON response with `status`. */
function sendJson(responseOut, status, value) {
  const bytes = encoder.encode(JSON.stringify(value));
  const response = new OutgoingResponse(Fields.fromList([['content-type', encoder.encode('application/json')]]));
  response.setStatusCode(status);
  const body = response.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
  const stream = body.write();
  // blockingWriteAndFlush takes at most 4096 bytes per call.
  for (let at = 0; at < bytes.length; at += 4096) {
    stream.blockingWriteAndFlush(bytes.subarray(at, at + 4096));
  }
  stream[Symbol.dispose]();
  OutgoingBody.finish(body, undefined);
}

/** Runs a wasi:keyvalue call, turning its error variant into an HttpError. */
function kv(call) {
  try {
    return call();
  } catch (e) {
    const error = e.payload;
    if (error?.tag === 'access-denied' || error?.tag === 'no-such-store') {
      throw new HttpError(403, `this function is not granted the key-value store \`${STORE}\``);
    }
    if (error?.tag === 'other') throw new HttpError(500, `the store failed: ${error.val}`);
    throw e;
  }
}

/** A wasi:config value, or `fallback` when it is not set. */
function config(key, fallback) {
  try {
    return getConfig(key) ?? fallback;
  } catch (e) {
    throw new HttpError(500, `config failed: ${JSON.stringify(e.payload)}`);
  }
}

/** The cart's items, {item: quantity}. */
function loadItems(bucket, user) {
  const bytes = kv(() => bucket.get(`cart:${user}`));
  return bytes === undefined ? {} : JSON.parse(decoder.decode(bytes));
}

/** Reads and checks the item to add. */
function parseItem(text) {
  let input;
  try {
    input = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `bad JSON: ${e.message}`);
  }
  const item = typeof input?.item === 'string' ? input.item.trim() : '';
  if (item === '') throw new HttpError(400, 'field `item` (a non-empty string) is required');
  const quantity = input.quantity ?? 1;
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > 100) {
    throw new HttpError(400, 'field `quantity` must be an integer from 1 to 100');
  }
  return [item, quantity];
}

function route(method, path, request) {
  const segments = path.split('?')[0].split('/').filter((s) => s !== '');
  const at = segments.lastIndexOf('cart');
  const [user, action, ...rest] = at < 0 ? [] : segments.slice(at + 1);
  if (user === undefined || rest.length > 0 || (action !== undefined && action !== 'checkout')) {
    throw new HttpError(404, `no route for ${path}`);
  }
  if (!USER.test(user)) throw new HttpError(400, 'the user must be 1-64 letters, digits, `-` or `_`');
  const currency = config('currency', 'USD');
  const bucket = kv(() => open(STORE));
  const key = `cart:${user}`;
  const cart = (items) => ({ user, items, currency });

  if (action === 'checkout') {
    if (method.tag !== 'post') throw new HttpError(405, 'method not allowed; use POST');
    const paymentKey = config('payment-key', undefined);
    if (paymentKey === undefined) {
      throw new HttpError(503, 'payments are not configured: grant this function the secret `payment-key`');
    }
    const items = loadItems(bucket, user);
    if (Object.keys(items).length === 0) throw new HttpError(409, 'the cart is empty');
    const order = kv(() => increment(bucket, 'orders', 1n));
    kv(() => bucket.delete(key));
    // Only the key's last four characters ever leave the function.
    return [200, { order: Number(order), ...cart(items), payment_key: `…${paymentKey.slice(-4)}` }];
  }
  switch (method.tag) {
    case 'get':
      return [200, cart(loadItems(bucket, user))];
    case 'post': {
      const [item, quantity] = parseItem(readText(request));
      const items = loadItems(bucket, user);
      items[item] = (items[item] ?? 0) + quantity;
      kv(() => bucket.set(key, encoder.encode(JSON.stringify(items))));
      return [200, cart(items)];
    }
    case 'delete':
      kv(() => bucket.delete(key));
      return [200, cart({})];
    default:
      throw new HttpError(405, 'method not allowed; use GET, POST or DELETE');
  }
}

export const incomingHandler = {
  handle(request, responseOut) {
    const path = request.pathWithQuery() ?? '/';
    let status, value;
    try {
      [status, value] = route(request.method(), path, request);
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      [status, value] = [e.status, { error: e.message }];
    }
    // Resources wait for the garbage collector unless disposed of: in a
    // reused instance (isolation = "instance") they would pile up to the
    // per-instance handle limit first (docs/languages.md).
    request[Symbol.dispose]();
    sendJson(responseOut, status, value);
  },
};
