// Command plainproxy is the benchmark's baseline: a plain
// httputil.ReverseProxy with no authentication, authorization, masking or
// audit, tuned the way a careful Go proxy would be (64 KiB copy buffers from
// a pool, 64 KiB connection buffers, enough idle upstream connections). The
// ratios in bench/RESULTS.md are fhirwall's figures over this one's.
//
// It prints "listening http://ADDR" on stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

// bufferPool hands the ReverseProxy 64 KiB copy buffers (its default is a
// fresh 32 KiB buffer per response).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:9090")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		log.Fatalf("plainproxy: -upstream must be an absolute URL: %q", *upstream)
	}
	pool := &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}}
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     64 << 10,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
		},
		Transport:  transport,
		BufferPool: pool,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	_ = os.Stdout.Sync()
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
