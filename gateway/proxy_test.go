package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stalledConn is the gateway's connection to the upstream with the thread that writes the
// request's last bytes descheduled right after it wrote them (what a busy node does to a proxy
// with more threads than cores): the upstream has the whole request and answers meanwhile.
type stalledConn struct {
	net.Conn
	last  []byte
	stall time.Duration
}

func (c *stalledConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if bytes.HasSuffix(p, c.last) {
		time.Sleep(c.stall)
	}
	return n, err
}

// A request body streamed through (not buffered for sampling) must not cost the answer. The
// server closes the caller's body when the answer's head is written; the transport, having sent
// the declared length, reads the body once more to check it is not longer. When that read came
// after the close, the transport closed the upstream connection and the answer was cut after its
// head (about one request in twelve on a loaded 2-core machine with GOMAXPROCS 3).
func TestAnAnswerIsWholeWhenTheRequestsWriterIsDescheduled(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 6 {
			fmt.Fprintf(w, "data: {\"chunk\": %d, \"request_bytes\": %d}\n\n", i, len(body))
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer upstream.Close()
	origin, _ := url.Parse(upstream.URL)
	sampler, _ := buildSampler(&config{rate: 0}) // nothing sampled: bodies stream through
	metrics := NewMetrics(func() float64 { return 0 })
	g := NewGateway(origin, sampler, nil, metrics, time.Second)
	transport := g.proxy.Transport.(*http.Transport)
	dial := transport.DialContext
	transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stalledConn{Conn: c, last: []byte(`"end"}`), stall: 25 * time.Millisecond}, nil
	}
	gateway := httptest.NewServer(g)
	defer gateway.Close()

	request := `{"model": "gpt-4o", "input": "` + strings.Repeat("a", 100) + `", "tag": "end"}`
	var want strings.Builder
	for i := range 6 {
		fmt.Fprintf(&want, "data: {\"chunk\": %d, \"request_bytes\": %d}\n\n", i, len(request))
	}
	want.WriteString("data: [DONE]\n\n")
	for i := range 3 { // the same upstream connection is used again: it was not torn down
		resp, err := http.Post(gateway.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(request))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != want.String() {
			t.Fatalf("request %d: the answer arrived cut (%v):\n%s", i, err, got)
		}
	}
	families, _ := metrics.Registry.Gather()
	for _, f := range families {
		if f.GetName() == "slam_gateway_streams_cut_total" && f.Metric[0].Counter.GetValue() != 0 {
			t.Fatalf("%v answers counted as cut", f.Metric[0].Counter.GetValue())
		}
	}
}

// Only a request the sampling's coin drew is held until its body is read (its filters need the
// JSON); every other request's body reaches the upstream as the caller sends it. Here the caller
// sends the rest of its body only once the upstream has the first part: a gateway that held the
// body first would pass on neither.
func TestARequestNotDrawnStreamsThroughWithTheMirrorOn(t *testing.T) {
	firstPart := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		head := make([]byte, 6)
		if _, err := io.ReadFull(r.Body, head); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		firstPart <- string(head)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s%s", head, rest)
	}))
	defer upstream.Close()
	origin, _ := url.Parse(upstream.URL)
	sampler, _ := buildSampler(&config{rate: 0.5})
	sampler.Draw = func() float64 { return 0.9 } // never drawn
	metrics := NewMetrics(func() float64 { return 0 })
	mirror := NewMirror(10, t.TempDir()+"/recorder.sock", time.Second, metrics)
	gateway := httptest.NewServer(NewGateway(origin, sampler, mirror, metrics, time.Second))
	defer gateway.Close()

	body, feed := io.Pipe()
	const whole = `{"a":1, "b": 2}`
	req, _ := http.NewRequest("POST", gateway.URL+"/v1/chat/completions", body)
	req.ContentLength = int64(len(whole))
	go func() {
		_, _ = feed.Write([]byte(whole[:6]))
		select {
		case <-firstPart:
			_, _ = feed.Write([]byte(whole[6:]))
			feed.Close()
		case <-time.After(10 * time.Second):
			feed.CloseWithError(fmt.Errorf("the upstream never saw the body's first part"))
		}
	}()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != whole {
		t.Fatalf("the upstream never had the body's first part before the rest was sent: "+
			"answered %s %q (%v)", resp.Status, got, err)
	}
}
