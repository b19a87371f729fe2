/* c-cgi: a command function (handler = "cgi") in plain C: a WASI preview-1
 * command (a core module with `_start`, built by zig's wasm32-wasi libc) that
 * Wisp adapts into a wasi:cli/run component at deploy. Nothing Wisp-specific:
 * the request comes in CGI/1.1 env vars and on stdin, the response goes to
 * stdout as CGI headers, a blank line and the body, so the same program runs
 * under any CGI web server.
 *
 *   PATH_INFO=/env    lists the CGI variables it was given
 *   PATH_INFO=/tmp    writes, appends to, reads back and removes /tmp/c.txt
 *                     (the run's own in-memory /tmp) with stdio
 *   anything else     "Hello from C CGI, world! METHOD PATH_INFO?QUERY";
 *                     a POST's body (CONTENT_LENGTH bytes of stdin) follows
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *var(const char *name) {
  const char *value = getenv(name);
  return value ? value : "";
}

static const char *const cgi_vars[] = {
    "GATEWAY_INTERFACE", "SERVER_PROTOCOL", "SERVER_NAME", "SERVER_PORT", "REQUEST_METHOD",
    "SCRIPT_NAME",       "PATH_INFO",       "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
    "REMOTE_ADDR",       "HTTP_HOST",       "HTTP_USER_AGENT",
};

/* Writes, appends, reads back and removes a file in /tmp; says how far it got. */
static void exercise_tmp(void) {
  const char *file = "/tmp/c.txt";
  FILE *f = fopen(file, "w");
  if (!f || fputs("written by C", f) < 0 || fclose(f) != 0) {
    printf("write failed: %s\n", strerror(errno));
    return;
  }
  f = fopen(file, "a");
  if (!f || fputs(", appended", f) < 0 || fclose(f) != 0) {
    printf("append failed: %s\n", strerror(errno));
    return;
  }
  char text[64] = {0};
  f = fopen(file, "r");
  if (!f) {
    printf("read failed: %s\n", strerror(errno));
    return;
  }
  fread(text, 1, sizeof text - 1, f);
  fclose(f);
  printf("read back from %s: %s\n", file, text);
  printf("removed: %s\n", remove(file) == 0 ? "yes" : strerror(errno));
}

int main(void) {
  const char *method = var("REQUEST_METHOD");
  const char *path = var("PATH_INFO");
  const char *query = var("QUERY_STRING");

  printf("Content-Type: text/plain\r\n\r\n");
  if (strcmp(path, "/env") == 0) {
    for (size_t i = 0; i < sizeof cgi_vars / sizeof cgi_vars[0]; i++) {
      printf("%s=%s\n", cgi_vars[i], var(cgi_vars[i]));
    }
    return 0;
  }
  if (strcmp(path, "/tmp") == 0) {
    exercise_tmp();
    return 0;
  }

  const char *greeting = getenv("GREETING");
  printf("%s from C CGI, world! %s %s%s%s\n", greeting ? greeting : "Hello", method, path,
         *query ? "?" : "", query);

  if (strcmp(method, "POST") == 0) {
    /* CONTENT_LENGTH bounds the body when given; otherwise read to the end of stdin. */
    const char *length = getenv("CONTENT_LENGTH");
    long left = length && *length ? strtol(length, NULL, 10) : -1;
    char buf[16384];
    while (left != 0) {
      size_t want = left < 0 || left > (long)sizeof buf ? sizeof buf : (size_t)left;
      size_t got = fread(buf, 1, want, stdin);
      if (got == 0) break;
      fwrite(buf, 1, got, stdout);
      if (left > 0) left -= (long)got;
    }
  }
  return 0;
}
