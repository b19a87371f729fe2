"""{{name}}: answers every request with a greeting and the request's path.

A Wisp function in Python is a class named IncomingHandler in the module
given to componentize-py; it gets the request and an out-parameter for the
response, and writes the body through a wasi:io output stream.
"""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        text = f"Hello from {{name}}! path={request.path_with_query() or '/'}\n"
        headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
        response = OutgoingResponse(headers)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        # One call writes at most 4096 bytes.
        with body.write() as stream:
            stream.blocking_write_and_flush(text.encode())
        OutgoingBody.finish(body, None)
