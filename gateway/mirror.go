package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Exchange is a sampled request and the incumbent's answer as the gateway relayed it: what the
// recorder (slam.gateway's `recorder_app`, the Python side) redacts and stores.
type Exchange struct {
	Request   json.RawMessage `json:"request"`
	Status    int             `json:"status"`
	Body      []byte          `json:"body"` // base64 in JSON
	Streamed  bool            `json:"streamed"`
	Encoding  string          `json:"encoding,omitempty"`
	StartedAt string          `json:"started_at"` // UTC, microseconds
	TTFTMs    *float64        `json:"ttft_ms"`
	E2EMs     float64         `json:"e2e_ms"`
}

// Mirror is the mirror path: a bounded queue the request path offers exchanges to without ever
// waiting (a full queue is a counted drop), drained by one goroutine that hands them to the
// recorder over a Unix socket in batches and counts each one's outcome. Batches: the recorder
// shares the proxy's core, and each of its turns (an HTTP request parsed, a thread woken, a
// transaction committed) can keep a relayed chunk waiting; one turn per batch instead of one
// per exchange cut its CPU per exchange by more than half (bench/README.md, issue 30).
type Mirror struct {
	queue    chan *Exchange
	size     int64
	waiting  atomic.Int64 // queued, or gathered into the next batch: at most size
	metrics  *Metrics
	client   *http.Client
	done     chan struct{}
	writing  atomic.Int64  // exchanges handed to the recorder and not yet answered
	MaxBatch int           // at most this many exchanges a turn
	MaxBytes int           // and no more once their requests and answers reach this size
	Linger   time.Duration // after the first, how long a turn waits for more to join it
}

// NewMirror makes the queue; Run drains it to the recorder listening on socket.
func NewMirror(size int, socket string, timeout time.Duration, metrics *Metrics) *Mirror {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	return &Mirror{
		queue:   make(chan *Exchange, size),
		size:    int64(size),
		metrics: metrics,
		client: &http.Client{Timeout: timeout,
			Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 1}},
		done:     make(chan struct{}),
		MaxBatch: 64,
		MaxBytes: 8 << 20,
		Linger:   200 * time.Millisecond,
	}
}

func (ex *Exchange) size() int { return len(ex.Request) + len(ex.Body) }

// Depth is how many exchanges wait: queued, or in the batch being gathered.
func (m *Mirror) Depth() float64 { return float64(m.waiting.Load()) }

// Offer queues an exchange, or counts it dropped when the queue is full (the batch being
// gathered counts against it: --queue-size bounds all that waits). Never blocks.
func (m *Mirror) Offer(ex *Exchange) {
	if m.waiting.Add(1) > m.size {
		m.waiting.Add(-1)
		m.metrics.Dropped.WithLabelValues("queue_full").Inc()
		return
	}
	m.queue <- ex // room: the channel holds size, and fewer than size wait
}

// Run hands the queued exchanges to the recorder, a batch at a time, until Close.
func (m *Mirror) Run() {
	defer close(m.done)
	failing := false
	for {
		batch := m.next()
		if len(batch) == 0 {
			return
		}
		m.writing.Store(int64(len(batch)))
		m.waiting.Add(-int64(len(batch)))
		reasons, err := m.record(batch)
		if err != nil {
			if !failing {
				log.Printf("the recorder did not take %d sampled request(s) (%v): counted as "+
					"store_unavailable", len(batch), err)
			}
			failing = true
		} else {
			failing = false
		}
		for i := range batch {
			reason := "store_unavailable"
			if err == nil {
				reason = reasons[i]
			}
			if reason == "" {
				m.metrics.Recorded.Inc()
			} else {
				m.metrics.Dropped.WithLabelValues(reason).Inc()
			}
		}
		m.writing.Store(0)
	}
}

// next waits for an exchange, then up to Linger for more (at most MaxBatch); empty once the
// queue is closed and drained. A closed queue ends the wait at once: on shutdown nothing lingers.
func (m *Mirror) next() []*Exchange {
	first, ok := <-m.queue
	if !ok {
		return nil
	}
	batch := []*Exchange{first}
	size := first.size()
	var linger <-chan time.Time
	if m.Linger > 0 {
		timer := time.NewTimer(m.Linger)
		defer timer.Stop()
		linger = timer.C
	}
	for len(batch) < m.MaxBatch && size < m.MaxBytes {
		var ex *Exchange
		select {
		case ex, ok = <-m.queue: // one already waiting joins at once
		default:
			if linger == nil {
				return batch
			}
			select {
			case ex, ok = <-m.queue:
			case <-linger:
				return batch
			}
		}
		if !ok {
			return batch
		}
		batch = append(batch, ex)
		size += ex.size()
	}
	return batch
}

// Close stops taking exchanges and waits up to timeout for the queue to be written; it returns
// how many were left (counted as queue_full drops).
func (m *Mirror) Close(timeout time.Duration) int {
	close(m.queue)
	select {
	case <-m.done:
		return 0
	case <-time.After(timeout):
		left := int(m.waiting.Load() + m.writing.Load()) // and the batch being written
		m.metrics.Dropped.WithLabelValues("queue_full").Add(float64(left))
		return left
	}
}

type outcomes struct {
	Outcomes []*string `json:"outcomes"`
}

// record sends a batch and returns each exchange's drop reason ("" when it was written).
func (m *Mirror) record(batch []*Exchange) ([]string, error) {
	reasons := make([]string, len(batch))
	payload, err := json.Marshal(batch)
	if err != nil { // one that cannot be encoded: each alone, so the others are kept
		if len(batch) == 1 {
			reasons[0] = "not_recordable"
			return reasons, nil
		}
		for i, ex := range batch {
			r, err := m.record([]*Exchange{ex})
			if err != nil {
				return nil, err
			}
			reasons[i] = r[0]
		}
		return reasons, nil
	}
	resp, err := m.client.Post("http://recorder/exchanges", "application/json",
		bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("recorder answered %s", resp.Status)
	}
	var o outcomes
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		return nil, fmt.Errorf("recorder's answer: %w", err)
	}
	if len(o.Outcomes) != len(batch) {
		return nil, fmt.Errorf("recorder answered %d outcomes for %d exchanges",
			len(o.Outcomes), len(batch))
	}
	for i, r := range o.Outcomes {
		if r != nil {
			reasons[i] = *r
		}
	}
	return reasons, nil
}
