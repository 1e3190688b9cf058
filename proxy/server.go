package proxy

import (
	"net/http"
	"time"
)

// MaxHeaderBytes bounds a request's headers; Go's server answers 431 beyond.
const MaxHeaderBytes = 64 << 10

// NewServer returns an http.Server with the limits a server facing clients
// needs: a header size limit and ReadHeaderTimeout against slowloris, an idle
// timeout. No read or write timeout, so that long uploads, streamed bodies and
// server-sent events are not cut off.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    MaxHeaderBytes - 4096, // net/http allows 4096 bytes of slack on top
	}
}
