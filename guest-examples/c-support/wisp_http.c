#include "wisp_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static wasi_http_types_borrow_incoming_request_t borrow(wisp_request_t request) {
  return wasi_http_types_borrow_incoming_request(request);
}

char *wisp_path(wisp_request_t request) {
  function_string_t path;
  if (!wasi_http_types_method_incoming_request_path_with_query(borrow(request), &path)) return strdup("/");
  char *text = strndup((const char *)path.ptr, path.len);
  function_string_free(&path);
  return text;
}

char *wisp_method(wisp_request_t request) {
  static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  wasi_http_types_method_t method;
  wasi_http_types_method_incoming_request_method(borrow(request), &method);
  if (method.tag == WASI_HTTP_TYPES_METHOD_OTHER) {
    char *text = strndup((const char *)method.val.other.ptr, method.val.other.len);
    function_string_free(&method.val.other);
    return text;
  }
  return strdup(names[method.tag]);
}

int wisp_read_body(wisp_request_t request, void (*on_chunk)(void *ctx, const uint8_t *data, size_t len), void *ctx) {
  wasi_http_types_own_incoming_body_t body;
  wasi_http_types_own_input_stream_t stream;
  if (!wasi_http_types_method_incoming_request_consume(borrow(request), &body)) return -1;
  if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body), &stream)) return -1;
  int result = 0;
  for (;;) {
    function_list_u8_t chunk;
    wasi_io_streams_stream_error_t error;
    if (wasi_io_streams_method_input_stream_blocking_read(wasi_io_streams_borrow_input_stream(stream), 65536, &chunk,
                                                          &error)) {
      on_chunk(ctx, chunk.ptr, chunk.len);
      function_list_u8_free(&chunk);
    } else {
      if (error.tag != WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
        wasi_io_error_error_drop_own(error.val.last_operation_failed);
        result = -1;
      }
      break; // closed: the end of the body
    }
  }
  wasi_io_streams_input_stream_drop_own(stream);
  wasi_http_types_future_trailers_drop_own(wasi_http_types_static_incoming_body_finish(body));
  return result;
}

void wisp_send(wisp_response_out_t out, uint16_t status, const char *content_type, const void *body, size_t len) {
  wasi_http_types_tuple2_field_name_field_value_t header = {
      .f0 = {(uint8_t *)"content-type", strlen("content-type")},
      .f1 = {(uint8_t *)content_type, strlen(content_type)},
  };
  wasi_http_types_list_tuple2_field_name_field_value_t list = {&header, 1};
  wasi_http_types_own_fields_t headers;
  wasi_http_types_header_error_t header_error;
  if (!wasi_http_types_static_fields_from_list(&list, &headers, &header_error)) abort();

  wasi_http_types_own_outgoing_response_t response = wasi_http_types_constructor_outgoing_response(headers);
  wasi_http_types_borrow_outgoing_response_t borrowed = wasi_http_types_borrow_outgoing_response(response);
  wasi_http_types_method_outgoing_response_set_status_code(borrowed, status);
  wasi_http_types_own_outgoing_body_t outgoing;
  wasi_http_types_own_output_stream_t stream;
  if (!wasi_http_types_method_outgoing_response_body(borrowed, &outgoing)) abort();
  if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(outgoing), &stream)) abort();
  wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false, .val = {.ok = response}};
  wasi_http_types_static_response_outparam_set(out, &result);

  const uint8_t *data = body;
  while (len > 0) {
    size_t n = len < 4096 ? len : 4096; // blocking-write-and-flush takes at most 4096 bytes
    function_list_u8_t chunk = {(uint8_t *)data, n};
    wasi_io_streams_stream_error_t error;
    if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(wasi_io_streams_borrow_output_stream(stream),
                                                                       &chunk, &error))
      abort(); // the client went away
    data += n;
    len -= n;
  }
  wasi_io_streams_output_stream_drop_own(stream);
  wasi_http_types_error_code_t error;
  if (!wasi_http_types_static_outgoing_body_finish(outgoing, NULL, &error)) abort();
}
