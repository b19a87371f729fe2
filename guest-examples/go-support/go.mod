module wisp/guest

go 1.27.1

require (
	go.bytecodealliance.org/pkg v0.4.0
	wisp/wit v0.0.0
)

replace (
	go.bytecodealliance.org/pkg => ../wit/bindings/go-pkg
	wisp/wit => ../wit/bindings/go
)
