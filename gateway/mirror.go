package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
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
// waiting (a full queue is a counted drop), drained by one goroutine that hands each to the
// recorder over a Unix socket and counts its outcome.
type Mirror struct {
	queue   chan *Exchange
	metrics *Metrics
	client  *http.Client
	done    chan struct{}
}

// NewMirror makes the queue; Run drains it to the recorder listening on socket.
func NewMirror(size int, socket string, timeout time.Duration, metrics *Metrics) *Mirror {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	return &Mirror{
		queue:   make(chan *Exchange, size),
		metrics: metrics,
		client: &http.Client{Timeout: timeout,
			Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 1}},
		done: make(chan struct{}),
	}
}

// Depth is how many exchanges wait.
func (m *Mirror) Depth() float64 { return float64(len(m.queue)) }

// Offer queues an exchange, or counts it dropped when the queue is full. Never blocks.
func (m *Mirror) Offer(ex *Exchange) {
	select {
	case m.queue <- ex:
	default:
		m.metrics.Dropped.WithLabelValues("queue_full").Inc()
	}
}

// Run hands the queued exchanges to the recorder one at a time until Close.
func (m *Mirror) Run() {
	defer close(m.done)
	failing := false
	for ex := range m.queue {
		reason, err := m.record(ex)
		if err != nil {
			if !failing {
				log.Printf("the recorder did not take a sampled request (%v): counted as "+
					"store_unavailable", err)
			}
			failing = true
			reason = "store_unavailable"
		} else {
			failing = false
		}
		if reason == "" {
			m.metrics.Recorded.Inc()
		} else {
			m.metrics.Dropped.WithLabelValues(reason).Inc()
		}
	}
}

// Close stops taking exchanges and waits up to timeout for the queue to be written; it returns
// how many were left (counted as queue_full drops).
func (m *Mirror) Close(timeout time.Duration) int {
	close(m.queue)
	select {
	case <-m.done:
		return 0
	case <-time.After(timeout):
		left := len(m.queue) + 1 // and the one being written
		m.metrics.Dropped.WithLabelValues("queue_full").Add(float64(left))
		return left
	}
}

type outcome struct {
	Outcome *string `json:"outcome"`
}

func (m *Mirror) record(ex *Exchange) (string, error) {
	payload, err := json.Marshal(ex)
	if err != nil {
		return "not_recordable", nil
	}
	resp, err := m.client.Post("http://recorder/exchange", "application/json",
		bytes.NewReader(payload))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("recorder answered %s", resp.Status)
	}
	var o outcome
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		return "", fmt.Errorf("recorder's answer: %w", err)
	}
	if o.Outcome == nil {
		return "", nil
	}
	return *o.Outcome, nil
}
