package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Gateway is the request path: net/http/httputil's ReverseProxy forwards every request to the
// upstream unchanged and relays the answer as it arrives (each chunk flushed at once); a sampled
// request's answer is copied on its way through and offered to the mirror after the caller got
// it.
type Gateway struct {
	Upstream       *url.URL
	Sampler        *Sampler
	Mirror         *Mirror // nil: nothing is recorded
	Metrics        *Metrics
	MaxRecordBytes int
	MaxBodyBytes   int64
	proxy          *httputil.ReverseProxy
}

// exchangeState is one request's timings and, when sampled, what is recorded of it.
type exchangeState struct {
	received  time.Time
	sent      time.Time
	answered  time.Time
	startedAt time.Time
	request   []byte // the sampled request's JSON; nil when not sampled
}

type stateKey struct{}

// NewGateway builds the proxy: the upstream's connections pooled and kept alive, no transparent
// decompression (the caller's Accept-Encoding goes through and the body comes back as sent).
func NewGateway(upstream *url.URL, sampler *Sampler, mirror *Mirror, metrics *Metrics,
	connectTimeout time.Duration) *Gateway {
	g := &Gateway{Upstream: upstream, Sampler: sampler, Mirror: mirror, Metrics: metrics,
		MaxRecordBytes: 4 << 20, MaxBodyBytes: 64 << 20}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connectTimeout,
		ExpectContinueTimeout: 1 * time.Second,
		DisableCompression:    true,
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      transport,
		FlushInterval:  -1,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.unreachable,
		ErrorLog:       log.New(io.Discard, "", 0), // its messages can quote a request: none kept
		// Copy buffers reused: without a pool each answer allocates 32 KB, and at hundreds of
		// requests a second on one core the garbage collector's turns showed in the p99.
		BufferPool: &bufferPool{},
	}
	return g
}

type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }

func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(g.Upstream)
	// The caller's own forwarding headers go through as sent (ReverseProxy drops them first).
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
	if st, ok := pr.In.Context().Value(stateKey{}).(*exchangeState); ok {
		st.sent = time.Now()
	}
}

func (g *Gateway) modifyResponse(resp *http.Response) error {
	st, _ := resp.Request.Context().Value(stateKey{}).(*exchangeState)
	g.Metrics.Forwarded.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
	if st == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return nil // an upgraded connection (the Realtime API's WebSocket) is relayed as is
	}
	st.answered = time.Now()
	resp.Body = &relayedBody{ReadCloser: resp.Body, gateway: g, state: st, resp: resp,
		record: st.request != nil}
	return nil
}

func (g *Gateway) unreachable(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		g.Metrics.Cut.Inc() // the caller went away before the answer began
		return
	}
	g.Metrics.Forwarded.WithLabelValues("502").Inc()
	kind := "connection failed"
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		kind = "timeout"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": fmt.Sprintf("the gateway could not reach the upstream API (%s)", kind),
		"type":    "gateway_error", "code": "upstream_unreachable"}})
}

// ServeHTTP forwards one request. Only a request the sampling's coin drew has its body read
// first (for the filters and the day's cap) and sent on as read; every other body streams
// through as the caller sends it (a long prompt is not held back).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &exchangeState{received: time.Now()}
	if g.Mirror != nil && g.Sampler.Drawn(r.Method, r.URL.Path) {
		body, err := io.ReadAll(io.LimitReader(r.Body, g.MaxBodyBytes+1))
		if err != nil {
			return // the caller went away mid-request
		}
		if int64(len(body)) > g.MaxBodyBytes {
			http.Error(w, "request body too large for the gateway", http.StatusRequestEntityTooLarge)
			return
		}
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Del("Transfer-Encoding")
		r.TransferEncoding = nil
		if g.Sampler.Accepts(body) {
			st.request = body
			st.startedAt = time.Now().UTC()
		}
	} else if r.ContentLength > 0 {
		// A body streamed through ends at its declared length. Having sent that many bytes, the
		// transport reads once more to check the body is not longer (transferWriter.writeBody);
		// by then the upstream may have answered and the server closed the caller's body on
		// writing the answer's head (its HTTP/1 drain, golang/go#40747). That read failed, the
		// transport closed the upstream connection, and the answer being relayed was cut after
		// its head (a busy machine with more threads than cores). The limit answers that read.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(r.Body, r.ContentLength), r.Body}
	}
	tw := &timedWriter{ResponseWriter: w, state: st, metrics: g.Metrics}
	g.proxy.ServeHTTP(tw, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
}

// timedWriter notes when the answer's head is handed to the caller's connection: the gateway's
// added latency is its time before the upstream request is sent plus between the upstream's
// head arriving and the caller's being written.
type timedWriter struct {
	http.ResponseWriter
	state   *exchangeState
	metrics *Metrics
	wrote   bool
}

func (t *timedWriter) WriteHeader(code int) {
	if !t.wrote && code >= 200 {
		t.wrote = true
		st := t.state
		if !st.answered.IsZero() && !st.sent.IsZero() {
			added := st.sent.Sub(st.received) + time.Since(st.answered)
			t.metrics.Added.Observe(added.Seconds())
		}
	}
	t.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController (ReverseProxy's flushes) reach the connection.
func (t *timedWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// relayedBody is the upstream's answer as ReverseProxy reads it: it notes the first byte, keeps
// a copy when the request is sampled (up to MaxRecordBytes), and when the answer ended whole
// offers the exchange to the mirror. An answer that ended early (the upstream cut it, or the
// caller went away and ReverseProxy stopped reading) is counted and never recorded.
type relayedBody struct {
	io.ReadCloser
	gateway *Gateway
	state   *exchangeState
	resp    *http.Response
	record  bool
	copy    bytes.Buffer
	first   time.Time
	ended   bool
	failed  bool
	closed  bool
}

func (b *relayedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if b.first.IsZero() {
			b.first = time.Now()
		}
		if b.record {
			if b.copy.Len()+n > b.gateway.MaxRecordBytes {
				b.record = false
				b.copy = bytes.Buffer{}
				b.gateway.Metrics.Dropped.WithLabelValues("too_large").Inc()
			} else {
				b.copy.Write(p[:n])
			}
		}
	}
	if err == io.EOF {
		b.ended = true
	} else if err != nil {
		b.failed = true
	}
	return n, err
}

func (b *relayedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.closed {
		return err
	}
	b.closed = true
	if !b.ended || b.failed {
		b.gateway.Metrics.Cut.Inc()
		return err
	}
	st := b.state
	if st.request == nil {
		return err
	}
	b.gateway.Metrics.Sampled.Inc()
	if !b.record {
		return err // too large: counted when it grew past the bound
	}
	now := time.Now()
	ex := &Exchange{
		Request:   st.request,
		Status:    b.resp.StatusCode,
		Body:      b.copy.Bytes(),
		Streamed:  strings.HasPrefix(b.resp.Header.Get("Content-Type"), "text/event-stream"),
		Encoding:  b.resp.Header.Get("Content-Encoding"),
		StartedAt: st.startedAt.Format("2006-01-02T15:04:05.000000Z07:00"),
		E2EMs:     float64(now.Sub(st.received).Microseconds()) / 1000,
	}
	if !b.first.IsZero() {
		ttft := float64(b.first.Sub(st.received).Microseconds()) / 1000
		ex.TTFTMs = &ttft
	}
	b.gateway.Mirror.Offer(ex)
	return err
}
