package main

// The incumbent stand-in in Go (`loadgen --serve`): the same streamed answers as
// tests/fakes/openai_stub.py's happy path (the first token after --first-token, then --tokens
// tokens --interval apart, a finish chunk and [DONE]; the first token stamped with its send
// time), at a fraction of the Python stub's CPU per chunk. At 500 requests/s the Python stub
// writes 9,000 chunks a second on the core the client also needs, so a chunk relayed by a proxy
// on the other core often found that core busy; this one leaves the client's core mostly idle.

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"time"
)

type stubConfig struct {
	tokens     int
	interval   time.Duration
	firstToken time.Duration
	stamp      bool
}

type chatRequest struct {
	Model     string `json:"model"`
	Stream    bool   `json:"stream"`
	MaxTokens int    `json:"max_tokens"`
	Messages  []struct {
		Role string `json:"role"`
	} `json:"messages"`
}

func chunk(model string, content string, finish string) []byte {
	delta := map[string]string{}
	if content != "" {
		delta["content"] = content
	}
	var reason any
	if finish != "" {
		reason = finish
	}
	b, _ := json.Marshal(map[string]any{"id": "chatcmpl-stub", "object": "chat.completion.chunk",
		"created": time.Now().Unix(), "model": model,
		"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": reason}}})
	return append(append([]byte("data: "), b...), '\n', '\n')
}

func (c stubConfig) completions(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error": {"message": "Invalid 'messages'"}}`))
		return
	}
	received := monotonicNs()
	if req.Model == "" {
		req.Model = "stub"
	}
	n := c.tokens
	if req.MaxTokens > 0 && req.MaxTokens < n {
		n = req.MaxTokens
	}
	finish := "stop"
	if n == req.MaxTokens {
		finish = "length"
	}
	time.Sleep(c.firstToken)
	if !req.Stream {
		content := ""
		for i := 0; i < n; i++ {
			content += fmt.Sprintf(" tok%d", i)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-stub",
			"object": "chat.completion", "model": req.Model, "created": time.Now().Unix(),
			"choices": []map[string]any{{"index": 0, "finish_reason": finish,
				"message": map[string]string{"role": "assistant", "content": content}}}})
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for i := 0; i < n; i++ {
		time.Sleep(c.interval)
		b := chunk(req.Model, fmt.Sprintf(" tok%d", i), "")
		if c.stamp && i == 0 { // SSE comments (clients skip them): when the request was in, when this was sent
			b = append([]byte(fmt.Sprintf(": received %d\n\n: sent %d\n\n", received, monotonicNs())), b...)
		}
		if !send(b) {
			return
		}
	}
	if send(chunk(req.Model, "", finish)) {
		send([]byte("data: [DONE]\n\n"))
	}
}

func serve(addr string, c stubConfig) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", c.completions)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object": "list", "data": [{"id": "stub", "object": "model"}]}`))
	})
	srv := &http.Server{Addr: addr, Handler: mux, IdleTimeout: 30 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
