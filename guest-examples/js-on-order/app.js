// js-on-order: processes the com.example.order.created events that order-api
// publishes to the `orders` topic; the JavaScript twin of on-order.
//
// Wisp delivers each event as a CloudEvents binary-mode request: attributes
// in ce-* headers (ce-deliveryattempt = 1, 2, … on redeliveries, same ce-id),
// the data in the body. Answers:
//   204  a valid order {"id": 1, "item": "tea", "quantity": 2}: one log line;
//        events of other types are acknowledged and ignored
//   500  a poison order ({"poison": true}, quantity outside 1..=100, data that
//        is not an order): Wisp redelivers it, then dead-letters it
//   400  a request without the required ce-* headers
import { Fields, IncomingBody, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';

const ORDER_CREATED = 'com.example.order.created';
const REQUIRED = ['specversion', 'id', 'source', 'type'];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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

/** Answers `status`, with `text` as the body if there is one. */
function send(responseOut, status, text) {
  const headers = text ? [['content-type', encoder.encode('text/plain; charset=utf-8')]] : [];
  const response = new OutgoingResponse(Fields.fromList(headers));
  response.setStatusCode(status);
  const body = response.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
  if (text) {
    const stream = body.write();
    // One call writes at most 4096 bytes; these messages are far smaller.
    stream.blockingWriteAndFlush(encoder.encode(text.slice(0, 1000)));
    stream[Symbol.dispose]();
  }
  OutgoingBody.finish(body, undefined);
}

/** The event's attributes from its ce-* headers (percent-decoded, as the HTTP binding asks). */
function attributes(request) {
  const event = {};
  const headers = request.headers();
  const entries = headers.entries();
  headers[Symbol.dispose]();
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!lower.startsWith('ce-')) continue;
    const text = decoder.decode(value);
    try {
      event[lower.slice(3)] = decodeURIComponent(text);
    } catch {
      event[lower.slice(3)] = text; // a malformed escape: keep it as sent
    }
  }
  return event;
}

/** The order in `data`, or an Error saying why it is poison. */
function parseOrder(data) {
  let order;
  try {
    order = JSON.parse(data);
  } catch (e) {
    throw new Error(`data is not JSON: ${e.message}`);
  }
  if (order === null || typeof order !== 'object') throw new Error('data is not a JSON object');
  if (order.poison === true) throw new Error('poison order');
  if (!Number.isInteger(order.id) || order.id <= 0) throw new Error('`id` is not a positive integer');
  if (typeof order.item !== 'string' || order.item.trim() === '') throw new Error('`item` is not a non-empty string');
  if (!Number.isInteger(order.quantity)) throw new Error('`quantity` is not an integer');
  if (order.quantity < 1 || order.quantity > 100) throw new Error(`quantity ${order.quantity} is outside 1..=100`);
  return order;
}

export const incomingHandler = {
  handle(request, responseOut) {
    const event = attributes(request);
    const data = readText(request);
    // Resources wait for the garbage collector unless disposed of: in a
    // reused instance (isolation = "instance") they would pile up to the
    // per-instance handle limit first (docs/languages.md).
    request[Symbol.dispose]();
    const missing = REQUIRED.filter((name) => !event[name]).map((name) => `ce-${name}`);
    if (missing.length > 0) {
      send(responseOut, 400, `missing required CloudEvent header(s): ${missing.join(', ')}\n`);
      return;
    }
    if (event.type !== ORDER_CREATED) {
      console.log(`js-on-order: ignoring event ${event.id} of type ${event.type}`);
      send(responseOut, 204);
      return;
    }
    let order;
    try {
      order = parseOrder(data);
    } catch (e) {
      console.error(`js-on-order: event ${event.id} failed: order refused: ${e.message}`);
      send(responseOut, 500, `event ${event.id} failed: order refused: ${e.message}\n`);
      return;
    }
    const attempt = event.deliveryattempt ?? '?';
    console.log(
      `js-on-order: order ${order.id} item=${JSON.stringify(order.item)} quantity=${order.quantity} ce-id=${event.id} attempt=${attempt}`,
    );
    send(responseOut, 204);
  },
};
