// go-cgi: a command function (handler = "cgi") in plain Go, built with
// GOOS=wasip1 GOARCH=wasm into a WASI preview-1 command (a core module with
// `_start`; Wisp adapts it into a wasi:cli/run component at deploy).
//
// It is an ordinary net/http handler served by the standard library's
// net/http/cgi: the request comes from the CGI/1.1 env vars and stdin, the
// response goes to stdout. The same program runs under any CGI web server.
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"os"
	"runtime"
)

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	fmt.Fprintf(w, "%s from Go CGI (%s %s/%s): %s %s\n",
		greeting, runtime.Version(), runtime.GOOS, runtime.GOARCH, r.Method, r.URL.RequestURI())
	if r.Method == http.MethodPost {
		io.Copy(w, r.Body)
	}
}

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", hello)
	if err := cgi.Serve(mux); err != nil {
		fmt.Fprintln(os.Stderr, "go-cgi:", err)
		os.Exit(1)
	}
}
