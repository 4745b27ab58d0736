package main

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recorderStub answers the mirror's batches on a Unix socket like slam.gateway's recorder:
// an exchange whose request is "dup" is a duplicate, the rest are written; while down it
// answers 503.
type recorderStub struct {
	mu      sync.Mutex
	batches []int
	down    bool
}

func (s *recorderStub) start(t *testing.T) string {
	socket := t.TempDir() + "/recorder.sock"
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []Exchange
		if r.URL.Path != "/exchanges" || json.NewDecoder(r.Body).Decode(&batch) != nil {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.down {
			http.Error(w, "store down", http.StatusServiceUnavailable)
			return
		}
		s.batches = append(s.batches, len(batch))
		dup := "duplicate"
		answer := outcomes{}
		for _, ex := range batch {
			if string(ex.Request) == `"dup"` {
				answer.Outcomes = append(answer.Outcomes, &dup)
			} else {
				answer.Outcomes = append(answer.Outcomes, nil)
			}
		}
		_ = json.NewEncoder(w).Encode(answer)
	})}
	go server.Serve(ln)
	t.Cleanup(func() { server.Close() })
	return socket
}

func exchange(request string) *Exchange {
	return &Exchange{Request: json.RawMessage(`"` + request + `"`), Status: 200,
		Body: []byte("data: [DONE]\n\n"), Streamed: true, StartedAt: "2026-12-06T10:00:00Z"}
}

// Every sampled request is counted once, recorded or dropped by its own reason, however the
// mirror groups them for the recorder; and a shutdown writes what waits without lingering.
func TestEachExchangeOfABatchIsCountedByItsOwnOutcome(t *testing.T) {
	stub := &recorderStub{}
	metrics := NewMetrics(func() float64 { return 0 })
	mirror := NewMirror(100, stub.start(t), 5*time.Second, metrics)
	mirror.Linger = time.Hour // only the batch bound or the shutdown ends a batch here
	mirror.MaxBatch = 4
	go mirror.Run()
	for i := 0; i < 10; i++ {
		name := "ok"
		if i%3 == 0 {
			name = "dup"
		}
		mirror.Offer(exchange(name))
	}
	begun := time.Now()
	if left := mirror.Close(10 * time.Second); left != 0 {
		t.Fatalf("%d exchanges left unwritten at shutdown", left)
	}
	if waited := time.Since(begun); waited > 5*time.Second {
		t.Fatalf("the shutdown waited %s for a batch to fill", waited)
	}
	if got := testutil.ToFloat64(metrics.Recorded); got != 6 {
		t.Errorf("recorded %v, want 6", got)
	}
	if got := testutil.ToFloat64(metrics.Dropped.WithLabelValues("duplicate")); got != 4 {
		t.Errorf("dropped as duplicates %v, want 4", got)
	}
	stub.mu.Lock()
	defer stub.mu.Unlock()
	total := 0
	for _, n := range stub.batches {
		if n > 4 {
			t.Errorf("a batch of %d, above MaxBatch 4", n)
		}
		total += n
	}
	if total != 10 || len(stub.batches) >= 10 {
		t.Errorf("batches %v: want the 10 exchanges in fewer than 10 turns", stub.batches)
	}
}

// A recorder that fails a batch costs each of its exchanges one store_unavailable drop, and the
// mirror goes on with the next batch once the recorder answers again.
func TestAFailedBatchCountsEachOfItsExchanges(t *testing.T) {
	stub := &recorderStub{down: true}
	metrics := NewMetrics(func() float64 { return 0 })
	mirror := NewMirror(100, stub.start(t), 5*time.Second, metrics)
	mirror.Linger = 50 * time.Millisecond
	go mirror.Run()
	for i := 0; i < 3; i++ {
		mirror.Offer(exchange("ok"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(metrics.Dropped.WithLabelValues("store_unavailable")) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %v as store_unavailable, want 3",
				testutil.ToFloat64(metrics.Dropped.WithLabelValues("store_unavailable")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stub.mu.Lock()
	stub.down = false
	stub.mu.Unlock()
	mirror.Offer(exchange("ok"))
	mirror.Close(10 * time.Second)
	if got := testutil.ToFloat64(metrics.Recorded); got != 1 {
		t.Errorf("recorded %v after the recorder came back, want 1", got)
	}
	if got := testutil.ToFloat64(metrics.Dropped.WithLabelValues("store_unavailable")); got != 3 {
		t.Errorf("store_unavailable %v, want 3", got)
	}
}
