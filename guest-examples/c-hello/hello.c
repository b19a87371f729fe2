// c-hello: answers every request with a greeting and the request's path.
// GREETING (from the function's `env`) replaces "Hello" when it is set.
//
// A Wisp function in C defines the one export wit-bindgen declares in
// function.h, exports_wasi_http_incoming_handler_handle(): it gets the request
// and an out-parameter for the response. ../c-support/wisp_http.h wraps the
// generated bindings; libc works as usual (getenv, malloc, printf to the log).
#include <stdio.h>
#include <stdlib.h>

#include "wisp_http.h"

void exports_wasi_http_incoming_handler_handle(wisp_request_t request, wisp_response_out_t out) {
  const char *greeting = getenv("GREETING");
  char *path = wisp_path(request);
  char *text = NULL;
  int len = asprintf(&text, "%s from C, world! path=%s\n", greeting ? greeting : "Hello", path);
  if (len < 0) abort();
  wisp_send(out, 200, "text/plain; charset=utf-8", text, (size_t)len);
  free(text);
  free(path);
  wasi_http_types_incoming_request_drop_own(request);
}
