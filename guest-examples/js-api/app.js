// js-api: a small JSON API, the JavaScript twin of guest-examples/json-api.
//
//   GET  …/items/<id>  → 200 {"id":<id>,"name":"item-<id>"}
//   POST …/items       → 201 {"id":1,"name":<name>} for a body {"name":"…"}
//   GET  …/crash       → throws: the instance traps and Wisp answers 500
//   bad JSON or fields → 400 {"error":"…"}; wrong method → 405; else → 404
//
// Routes match the end of the path, because Wisp passes the full request path
// and the function may be mounted under a prefix (/api/items/7 = /items/7).
// Each request runs in a fresh instance, so there is no store: ids start at 1.
import {
  Fields,
  IncomingBody,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.12';

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
  const headers = Fields.fromList([['content-type', encoder.encode('application/json')]]);
  const response = new OutgoingResponse(headers);
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

function route(method, path, request) {
  const segments = path.split('?')[0].replace(/\/+$/, '').split('/');
  const [last, beforeLast] = [segments.at(-1), segments.at(-2)];
  if (last === 'crash') {
    // An uncaught exception: the guest traps and the host answers 500.
    throw new Error('crash requested');
  }
  if (last === 'items') {
    if (method.tag !== 'post') throw new HttpError(405, 'method not allowed; use POST');
    let input;
    try {
      input = JSON.parse(readText(request));
    } catch (e) {
      throw new HttpError(400, `bad JSON: ${e.message}`);
    }
    if (typeof input?.name !== 'string') throw new HttpError(400, 'field `name` (a string) is required');
    return [201, { id: 1, name: input.name }];
  }
  if (beforeLast === 'items') {
    if (method.tag !== 'get') throw new HttpError(405, 'method not allowed; use GET');
    if (!/^\d+$/.test(last)) throw new HttpError(400, `item id must be a number, got ${JSON.stringify(last)}`);
    const id = Number(last);
    return [200, { id, name: `item-${id}` }];
  }
  throw new HttpError(404, `no route for ${path}`);
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
