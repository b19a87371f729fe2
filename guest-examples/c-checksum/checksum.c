// c-checksum: checksums the request body as it streams in, so a body of any
// size runs in constant memory.
//
//   POST …           → 200 "crc32=<8 hex> adler32=<8 hex> bytes=<n>\n"
//   POST …/crash     → abort(): the instance traps and Wisp answers 500
//   any other method → 405
//
// CRC-32 is the IEEE one (zlib's crc32, `cksum -a crc32b`); Adler-32 is zlib's.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wisp_http.h"

struct sums {
  uint32_t crc32;    // running, pre-inverted
  uint32_t adler_a;  // 1 + sum of bytes, mod 65521
  uint32_t adler_b;  // sum of the a's, mod 65521
  uint64_t bytes;
};

static uint32_t crc_table[256];

// Runs at instantiation (the reactor's _initialize calls constructors).
__attribute__((constructor)) static void build_crc_table(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[n] = c;
  }
}

static void add_chunk(void *ctx, const uint8_t *data, size_t len) {
  struct sums *s = ctx;
  s->bytes += len;
  for (size_t i = 0; i < len; i++) s->crc32 = crc_table[(s->crc32 ^ data[i]) & 0xff] ^ (s->crc32 >> 8);
  // Adler-32: up to 5552 bytes can be summed before the modulo can overflow.
  while (len > 0) {
    size_t n = len < 5552 ? len : 5552;
    len -= n;
    while (n--) {
      s->adler_a += *data++;
      s->adler_b += s->adler_a;
    }
    s->adler_a %= 65521;
    s->adler_b %= 65521;
  }
}

static int ends_with(const char *path, const char *suffix) {
  size_t query = strcspn(path, "?");
  size_t n = strlen(suffix);
  return query >= n && strncmp(path + query - n, suffix, n) == 0;
}

void exports_wasi_http_incoming_handler_handle(wisp_request_t request, wisp_response_out_t out) {
  char *method = wisp_method(request);
  char *path = wisp_path(request);
  char text[128];
  int len;
  if (strcmp(method, "POST") != 0) {
    len = snprintf(text, sizeof text, "method %s not allowed; POST a body to checksum it\n", method);
    wisp_send(out, 405, "text/plain; charset=utf-8", text, (size_t)len);
  } else if (ends_with(path, "/crash")) {
    fprintf(stderr, "c-checksum: crash requested\n");
    abort(); // a trap: no response was sent, so the host answers 500
  } else {
    struct sums s = {.crc32 = 0xFFFFFFFFu, .adler_a = 1, .adler_b = 0, .bytes = 0};
    if (wisp_read_body(request, add_chunk, &s) != 0) {
      len = snprintf(text, sizeof text, "could not read the request body\n");
      wisp_send(out, 400, "text/plain; charset=utf-8", text, (size_t)len);
    } else {
      len = snprintf(text, sizeof text, "crc32=%08x adler32=%08x bytes=%llu\n", s.crc32 ^ 0xFFFFFFFFu,
                     (s.adler_b << 16) | s.adler_a, (unsigned long long)s.bytes);
      wisp_send(out, 200, "text/plain; charset=utf-8", text, (size_t)len);
    }
  }
  free(path);
  free(method);
  wasi_http_types_incoming_request_drop_own(request);
}
