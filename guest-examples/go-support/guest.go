// Package guest turns a Go function into a Wisp (wasi:http) handler: it
// exports wasi:http/incoming-handler, hands the function a Request and sends
// the Response it returns. It wraps the wit-bindgen bindings in
// ../wit/bindings/go so the examples read like Go. Shared by the go-*
// examples; not a function itself.
//
//	func init() {
//		guest.Handle(func(r *guest.Request) *guest.Response {
//			return guest.Text(200, "hi\n")
//		})
//	}
//
// A panic in the handler traps the instance and Wisp answers 500; the next
// request gets a fresh instance.
package guest

import (
	"encoding/json"
	"errors"
	"runtime/debug"
	"strings"

	types "go.bytecodealliance.org/pkg/wit/types"
	http "wisp/wit/imports/wasi_http_types"
	streams "wisp/wit/imports/wasi_io_streams"
)

// Request is one incoming HTTP request.
type Request struct {
	// Method is upper case: "GET", "POST", ...
	Method string
	// Path is the full request path with its query, as the client sent it.
	Path string
	// Header holds the request headers, names in lower case.
	Header map[string][]string

	raw *http.IncomingRequest
}

// Response is what a handler answers.
type Response struct {
	Status int
	Header map[string]string
	Body   []byte
}

// Text is a text/plain response.
func Text(status int, text string) *Response {
	return &Response{status, map[string]string{"content-type": "text/plain; charset=utf-8"}, []byte(text)}
}

// JSON is an application/json response with `value` encoded; a value that
// cannot be encoded is a bug in the function, so it panics (→ 500).
func JSON(status int, value any) *Response {
	body, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	return &Response{status, map[string]string{"content-type": "application/json"}, body}
}

// withoutGC runs f with the garbage collector off. The host allocates what an
// import returns (a body chunk, the headers) through cabi_realloc, and a
// collection that completes in there reads the wall clock: an import call,
// which the component model forbids inside cabi_realloc, so the instance would
// trap. (The WASI adapter can pause only the monotonic clock for it.)
func withoutGC(f func()) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	f()
}

// ReadBody reads the whole request body, however large. Call it once.
func (r *Request) ReadBody() (data []byte, err error) {
	withoutGC(func() { data, err = r.readBody() })
	return data, err
}

func (r *Request) readBody() ([]byte, error) {
	body := r.raw.Consume()
	if body.IsErr() {
		return nil, errors.New("request body already consumed")
	}
	stream := body.Ok().Stream().Ok()
	var data []byte
	for {
		// Chunks stay below Go's 32 KiB large-object size: the host allocates
		// each through cabi_realloc, and a large allocation in there can
		// overflow the runtime's system stack (seen with 64 KiB chunks).
		chunk := stream.BlockingRead(16 * 1024)
		if chunk.IsErr() {
			if chunk.Err().Tag() == streams.StreamError_Closed {
				break // the end of the body
			}
			return nil, errors.New("reading the request body failed")
		}
		data = append(data, chunk.Ok()...)
	}
	stream.Drop()
	http.IncomingBodyFinish(body.Ok()).Drop()
	return data, nil
}

var handler func(*Request) *Response

// Handle registers the function's handler; call it from init().
func Handle(h func(*Request) *Response) {
	handler = h
}

var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

//go:wasmexport wasi:http/incoming-handler@0.2.12#handle
func handle(request, responseOut int32) {
	raw := http.IncomingRequestFromOwnHandle(request)
	var req *Request
	withoutGC(func() { req = newRequest(raw) })
	resp := handler(req)
	raw.Drop()
	send(http.ResponseOutparamFromOwnHandle(responseOut), resp)
}

func newRequest(raw *http.IncomingRequest) *Request {
	req := &Request{Path: raw.PathWithQuery().SomeOr("/"), Header: map[string][]string{}, raw: raw}
	if method := raw.Method(); method.Tag() == http.Method_Other {
		req.Method = method.Other()
	} else {
		req.Method = methods[method.Tag()]
	}
	headers := raw.Headers()
	for _, entry := range headers.Entries() {
		name := strings.ToLower(entry.F0)
		req.Header[name] = append(req.Header[name], string(entry.F1))
	}
	headers.Drop()
	return req
}

func send(out *http.ResponseOutparam, resp *Response) {
	var entries []types.Tuple2[string, []uint8]
	for name, value := range resp.Header {
		entries = append(entries, types.Tuple2[string, []uint8]{F0: name, F1: []byte(value)})
	}
	response := http.MakeOutgoingResponse(http.FieldsFromList(entries).Ok())
	response.SetStatusCode(uint16(resp.Status))
	body := response.Body().Ok()
	stream := body.Write().Ok()
	http.ResponseOutparamSet(out, types.Ok[*http.OutgoingResponse, http.ErrorCode](response))
	for data := resp.Body; len(data) > 0; {
		n := min(len(data), 4096) // blocking-write-and-flush takes at most 4096 bytes
		if stream.BlockingWriteAndFlush(data[:n]).IsErr() {
			break // the client went away
		}
		data = data[n:]
	}
	stream.Drop()
	http.OutgoingBodyFinish(body, types.None[*http.Fields]())
}
