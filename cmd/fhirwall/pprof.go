//go:build pprof

package main

// Built only with -tags pprof (bench/run.sh PPROF=1, or by hand): a
// profiling listener for measuring fhirwall under load. Never in a release
// build: it would expose the process's internals.

import (
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

func init() {
	addr := os.Getenv("FHIRWALL_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Printf("pprof: %v", err)
		return
	}
	log.Printf("pprof listening on http://%s/debug/pprof/", ln.Addr())
	go func() { log.Print(http.Serve(ln, nil)) }()
}
