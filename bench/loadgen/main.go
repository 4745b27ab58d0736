// loadgen is bench/gateway.py's client when it is built (Go): the same streamed chat requests as
// the Python client, sent by concurrency or at a constant rate, timed without a Python event
// loop's own queueing (at 500 requests/s the Python client's waits were larger than what it
// measured). Prints one JSON object: each request's TTFT and end-to-end time (ms), each first
// token's delivery (the stub's `: sent <CLOCK_MONOTONIC ns>` stamp to this client's read, ms),
// its request's way in (this client's send to the stub's `: received <ns>` stamp, ms), whether it
// went on a connection this client had just opened (the lists are aligned; -1 where the stub did
// not stamp), the failures and the seconds the run took.
//
//	loadgen --url http://127.0.0.1:PORT --n 2500 --rate 500 [--first 0]
//	loadgen --url http://127.0.0.1:PORT --n 1920 --concurrency 64
//
// With --serve it is the incumbent stand-in instead (stub.go):
//
//	loadgen --serve 127.0.0.1:PORT --first-token 250ms --tokens 16 --interval 2ms --stamp
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var (
	sentAt     = regexp.MustCompile(`: sent (\d+)`)
	receivedAt = regexp.MustCompile(`: received (\d+)`)
)

type result struct {
	TTFT     []float64 `json:"ttft_ms"`
	E2E      []float64 `json:"e2e_ms"`
	Delivery []float64 `json:"delivery_ms"`
	Request  []float64 `json:"request_ms"`
	NewConn  []bool    `json:"new_connection"`
	Failures int       `json:"failures"`
	Seconds  float64   `json:"seconds"`
	mu       sync.Mutex
}

func monotonicNs() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// body is a distinct request each time, so the gateway's mirror records rather than skipping
// duplicates (the Python client's body()).
func body(i int) []byte {
	b, _ := json.Marshal(map[string]any{"model": "gpt-4o", "stream": true, "max_tokens": 16,
		"messages": []map[string]string{{"role": "user",
			"content": fmt.Sprintf("Write a pep talk for Maya, number %d.", i)}}})
	return b
}

// stamp is the stub's CLOCK_MONOTONIC ns in the first SSE comment `re` matches.
func stamp(re *regexp.Regexp, data []byte) (int64, bool) {
	m := re.FindSubmatch(data)
	if m == nil {
		return 0, false
	}
	ns, err := strconv.ParseInt(string(m[1]), 10, 64)
	return ns, err == nil
}

func one(client *http.Client, url string, i int, res *result) {
	start := time.Now()
	startNs := monotonicNs()
	fail := func() {
		res.mu.Lock()
		res.Failures++
		res.mu.Unlock()
	}
	fresh := false
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body(i)))
	if err != nil {
		fail()
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { fresh = !info.Reused }}))
	resp, err := client.Do(req)
	if err != nil {
		fail()
		return
	}
	defer resp.Body.Close()
	buf := make([]byte, 16<<10)
	var first time.Time
	delivery, request := -1.0, -1.0
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && first.IsZero() {
			first = time.Now()
			read := monotonicNs()
			if sent, ok := stamp(sentAt, buf[:n]); ok {
				delivery = float64(read-sent) / 1e6
			}
			if received, ok := stamp(receivedAt, buf[:n]); ok {
				request = float64(received-startNs) / 1e6
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fail()
			return
		}
	}
	if resp.StatusCode != http.StatusOK || first.IsZero() {
		fail()
		return
	}
	end := time.Now()
	res.mu.Lock()
	res.TTFT = append(res.TTFT, float64(first.Sub(start).Microseconds())/1000)
	res.E2E = append(res.E2E, float64(end.Sub(start).Microseconds())/1000)
	res.Delivery = append(res.Delivery, delivery)
	res.Request = append(res.Request, request)
	res.NewConn = append(res.NewConn, fresh)
	res.mu.Unlock()
}

func main() {
	base := flag.String("url", "", "the base URL (the stub, a gateway, nginx)")
	n := flag.Int("n", 100, "how many requests")
	rate := flag.Float64("rate", 0, "requests per second, sent at constant intervals")
	concurrency := flag.Int("concurrency", 0, "requests in flight at once (instead of --rate)")
	firstID := flag.Int("first", 0, "the first request's number (keeps bodies distinct across runs)")
	listen := flag.String("serve", "", "serve streamed chat answers on this address instead")
	stub := stubConfig{}
	flag.IntVar(&stub.tokens, "tokens", 16, "--serve: tokens per answer (fewer if max_tokens says so)")
	flag.DurationVar(&stub.interval, "interval", 2*time.Millisecond, "--serve: time between tokens")
	flag.DurationVar(&stub.firstToken, "first-token", 0, "--serve: time before the first token")
	flag.BoolVar(&stub.stamp, "stamp", false, "--serve: `: sent <CLOCK_MONOTONIC ns>` before the first token")
	flag.Parse()
	if *listen != "" {
		serve(*listen, stub)
		return
	}
	if *base == "" || (*rate <= 0) == (*concurrency <= 0) {
		fmt.Fprintln(os.Stderr, "loadgen: --url and one of --rate or --concurrency are needed (or --serve ADDR)")
		os.Exit(2)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096,
		DisableCompression: true, IdleConnTimeout: 30 * time.Second}}
	url := *base + "/v1/chat/completions"
	res := &result{TTFT: []float64{}, E2E: []float64{}, Delivery: []float64{}, Request: []float64{},
		NewConn: []bool{}}
	var wg sync.WaitGroup
	began := time.Now()
	if *rate > 0 {
		interval := time.Duration(float64(time.Second) / *rate)
		for i := 0; i < *n; i++ {
			if d := time.Until(began.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			wg.Add(1)
			go func(i int) { defer wg.Done(); one(client, url, *firstID+i, res) }(i)
		}
	} else {
		next := make(chan int)
		for w := 0; w < *concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					one(client, url, i, res)
				}
			}()
		}
		for i := 0; i < *n; i++ {
			next <- *firstID + i
		}
		close(next)
	}
	wg.Wait()
	res.Seconds = time.Since(began).Seconds()
	_ = json.NewEncoder(os.Stdout).Encode(res)
}
