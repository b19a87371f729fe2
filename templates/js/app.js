// {{name}}: answers every request with a greeting and the request's path.
//
// A Wisp function in JavaScript exports the wasi:http incoming handler: it gets
// the request and an out-parameter for the response, and writes the body
// through wasi:io streams. componentize-js turns this module into a component.
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';

const encoder = new TextEncoder();

export const incomingHandler = {
  handle(request, responseOut) {
    const text = `Hello from {{name}}! path=${request.pathWithQuery() ?? '/'}\n`;
    const headers = Fields.fromList([['content-type', encoder.encode('text/plain; charset=utf-8')]]);
    const response = new OutgoingResponse(headers);
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
    const stream = body.write();
    // One call writes at most 4096 bytes.
    stream.blockingWriteAndFlush(encoder.encode(text));
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};
