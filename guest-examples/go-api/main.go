// go-api: a small JSON API, the Go twin of guest-examples/json-api.
//
//	GET  …/items/<id>  → 200 {"id":<id>,"name":"item-<id>"}
//	POST …/items       → 201 {"id":1,"name":<name>} for a body {"name":"…"}
//	GET  …/crash       → panics: the instance traps and Wisp answers 500
//	bad JSON or fields → 400 {"error":"…"}; wrong method → 405; else → 404
//
// Routes match the end of the path, because Wisp passes the full request path
// and the function may be mounted under a prefix (/api/items/7 = /items/7).
// Each request runs in a fresh instance, so there is no store: ids start at 1.
package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"wisp/guest"
)

type item struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
}

func apiError(status int, format string, args ...any) *guest.Response {
	return guest.JSON(status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func route(r *guest.Request) *guest.Response {
	path, _, _ := strings.Cut(r.Path, "?")
	segments := strings.Split(strings.TrimRight(path, "/"), "/")
	last := segments[len(segments)-1]
	beforeLast := ""
	if len(segments) > 1 {
		beforeLast = segments[len(segments)-2]
	}
	switch {
	case last == "crash":
		panic("crash requested") // the host answers 500 and stays healthy
	case last == "items":
		if r.Method != "POST" {
			return apiError(405, "method not allowed; use POST")
		}
		body, err := r.ReadBody()
		if err != nil {
			return apiError(400, "%v", err)
		}
		var input struct {
			Name *string `json:"name"`
		}
		if err := json.Unmarshal(body, &input); err != nil {
			return apiError(400, "bad JSON: %v", err)
		}
		if input.Name == nil {
			return apiError(400, "field `name` (a string) is required")
		}
		return guest.JSON(201, item{ID: 1, Name: *input.Name})
	case beforeLast == "items":
		if r.Method != "GET" {
			return apiError(405, "method not allowed; use GET")
		}
		id, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			return apiError(400, "item id must be a number, got %q", last)
		}
		return guest.JSON(200, item{ID: id, Name: fmt.Sprintf("item-%d", id)})
	}
	return apiError(404, "no route for %s", r.Path)
}

func init() { guest.Handle(route) }

// main is never called: the component is a library whose export is the handler.
func main() {}
