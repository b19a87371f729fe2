// wisp_http: a few helpers over the wit-bindgen C bindings of wasi:http
// (../wit/bindings/c/function.h), so a function reads like C rather than
// like the canonical ABI. Shared by the c-* examples; not a function itself.
#ifndef WISP_HTTP_H
#define WISP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "function.h"

typedef exports_wasi_http_incoming_handler_own_incoming_request_t wisp_request_t;
typedef exports_wasi_http_incoming_handler_own_response_outparam_t wisp_response_out_t;

// The request's path and query as a NUL-terminated string ("/" when absent);
// free() it.
char *wisp_path(wisp_request_t request);

// The request method as upper-case text ("GET", "POST", ...); free() it.
char *wisp_method(wisp_request_t request);

// Streams the request body, in chunks of at most 64 KiB, to `on_chunk`;
// consumes the request's body, so call it at most once. Returns 0, or -1 if
// the stream failed before its end.
int wisp_read_body(wisp_request_t request, void (*on_chunk)(void *ctx, const uint8_t *data, size_t len), void *ctx);

// Sends a whole response: `status`, one content-type header and `len` bytes
// of `body`. Call it once per request; the guest may not answer twice.
void wisp_send(wisp_response_out_t out, uint16_t status, const char *content_type, const void *body, size_t len);

#endif
