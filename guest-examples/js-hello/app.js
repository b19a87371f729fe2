// js-hello: answers every request with a greeting and the request's path.
// GREETING (from the function's `env`) replaces "Hello" when it is set.
//
// A Wisp function in JavaScript exports the wasi:http incoming handler: it gets
// the request and an out-parameter for the response, and writes the body
// through wasi:io streams. componentize-js turns this module into a component.
import { getEnvironment } from 'wasi:cli/environment@0.2.12';
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';

const encoder = new TextEncoder();

export const incomingHandler = {
  handle(request, responseOut) {
    const env = Object.fromEntries(getEnvironment());
    const greeting = env.GREETING ?? 'Hello';
    const text = `${greeting} from JS, world! path=${request.pathWithQuery() ?? '/'}\n`;
    // Resources wait for the garbage collector unless disposed of: in a
    // reused instance (isolation = "instance") they would pile up to the
    // per-instance handle limit first (docs/languages.md).
    request[Symbol.dispose]();

    const headers = Fields.fromList([['content-type', encoder.encode('text/plain; charset=utf-8')]]);
    const response = new OutgoingResponse(headers);
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
    const stream = body.write();
    // One call writes at most 4096 bytes; the greeting is far smaller.
    stream.blockingWriteAndFlush(encoder.encode(text));
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};
