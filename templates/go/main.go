// {{name}}: answers every request with a greeting and the request's path.
//
// A Wisp function in Go registers its handler with guest.Handle from init();
// the wisp/guest package (from the Wisp kit) exports the wasi:http handler and
// calls it once per request. The standard library works as usual.
package main

import (
	"fmt"

	"wisp/guest"
)

func init() {
	guest.Handle(func(r *guest.Request) *guest.Response {
		return guest.Text(200, fmt.Sprintf("Hello from {{name}}! path=%s\n", r.Path))
	})
}

// main is never called: the component is a library whose export is the handler.
func main() {}
