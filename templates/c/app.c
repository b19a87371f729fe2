// {{name}}: answers every request with a greeting and the request's path.
//
// A Wisp function in C defines the one export the wit-bindgen bindings
// declare, exports_wasi_http_incoming_handler_handle(): it gets the request
// and an out-parameter for the response. wisp_http.h (from the Wisp kit) wraps
// the bindings; libc works as usual (getenv, malloc, printf to the log).
#include <stdio.h>
#include <stdlib.h>

#include "wisp_http.h"

void exports_wasi_http_incoming_handler_handle(wisp_request_t request, wisp_response_out_t out) {
  char *path = wisp_path(request);
  char *text = NULL;
  int len = asprintf(&text, "Hello from {{name}}! path=%s\n", path);
  if (len < 0) abort();
  wisp_send(out, 200, "text/plain; charset=utf-8", text, (size_t)len);
  free(text);
  free(path);
  wasi_http_types_incoming_request_drop_own(request);
}
