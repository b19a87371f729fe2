module {{name}}

go 1.27.1

require (
	go.bytecodealliance.org/pkg v0.4.0
	wisp/guest v0.0.0
	wisp/wit v0.0.0
)

// Everything is local: the wasi:http bindings and the guest package come from
// the Wisp kit (scripts/install-guest-toolchains go); no Go module proxy needed.
replace (
	go.bytecodealliance.org/pkg => {{kit}}/guest/wit/bindings/go-pkg
	wisp/guest => {{kit}}/guest/go-support
	wisp/wit => {{kit}}/guest/wit/bindings/go
)
