module wisp/examples/go-api

go 1.27.1

require (
	go.bytecodealliance.org/pkg v0.4.0
	wisp/guest v0.0.0
	wisp/wit v0.0.0
)

// Everything is local: the bindings are committed in ../wit/bindings and the
// Go module proxy is not needed (builds run with GOPROXY=off).
replace (
	go.bytecodealliance.org/pkg => ../wit/bindings/go-pkg
	wisp/guest => ../go-support
	wisp/wit => ../wit/bindings/go
)
