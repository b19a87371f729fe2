module wisp/examples/go-cgi

go 1.27.1
