// go-hello: answers every request with a greeting and the request's path.
// GREETING (from the function's `env`) replaces "Hello" when it is set.
//
// A Wisp function in Go registers its handler with guest.Handle from init();
// ../go-support exports the wasi:http handler and calls it once per request.
// The standard library works as usual (os.Getenv, fmt, encoding/json).
package main

import (
	"fmt"
	"os"

	"wisp/guest"
)

func init() {
	guest.Handle(func(r *guest.Request) *guest.Response {
		greeting := os.Getenv("GREETING")
		if greeting == "" {
			greeting = "Hello"
		}
		return guest.Text(200, fmt.Sprintf("%s from Go, world! path=%s\n", greeting, r.Path))
	})
}

// main is never called: the component is a library whose export is the handler.
func main() {}
