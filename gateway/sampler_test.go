package main

import (
	"regexp"
	"testing"
	"time"
)

func TestSamplingRateCapRoutesModelsAndUsers(t *testing.T) {
	draws := []float64{0.05, 0.5, 0.01}
	drawn := 0
	day := time.Date(2026, 12, 1, 23, 59, 0, 0, time.UTC)
	s := &Sampler{
		Sampling: Sampling{Rate: 0.1, DailyCap: 2,
			Routes: map[string]bool{"/v1/chat/completions": true},
			Models: map[string]bool{"gpt-4o": true},
			Users:  regexp.MustCompile("^cust-"), ExcludeUsers: regexp.MustCompile("-test$")},
		Draw: func() float64 {
			d := draws[drawn%len(draws)]
			drawn++
			return d
		},
		Today: func() time.Time { return day },
	}
	const chat = "/v1/chat/completions"

	// The coin, before any body is read: only POSTs to a sampled route draw it.
	for _, c := range []struct {
		method, path string
		want         bool
		why          string
	}{
		{"GET", chat, false, "not a POST"},
		{"POST", "/v1/embeddings", false, "another route"},
		{"POST", chat, true, "draw 0.05 < 0.1"},
		{"POST", chat, false, "draw 0.5"},
		{"POST", chat, true, "draw 0.01"},
	} {
		if got := s.Drawn(c.method, c.path); got != c.want {
			t.Errorf("%s: Drawn = %v, want %v", c.why, got, c.want)
		}
	}
	if drawn != 3 {
		t.Errorf("%d coins drawn for 3 eligible requests: a request that cannot be recorded "+
			"must not draw", drawn)
	}

	// A drawn request's body: the filters, then the day's cap.
	ok := `{"model": "gpt-4o", "user": "cust-1", "messages": []}`
	for _, c := range []struct {
		body string
		want bool
		why  string
	}{
		{`{"model": "gpt-4", "user": "cust-1"}`, false, "another model"},
		{`{"model": "gpt-4o", "user": "staff-1"}`, false, "user not included"},
		{`{"model": "gpt-4o", "user": "cust-1-test"}`, false, "user excluded"},
		{`{"model": "gpt-4o", "user": 7}`, false, "a user that is not a string is none"},
		{`[1, 2]`, false, "not an object"},
		{`{"model": "gpt-4o",`, false, "not JSON"},
		{ok, true, "the day's first"},
		{ok, true, "the day's second"},
		{ok, false, "the cap"},
	} {
		if got := s.Accepts([]byte(c.body)); got != c.want {
			t.Errorf("%s: Accepts = %v, want %v", c.why, got, c.want)
		}
	}
	day = day.Add(2 * time.Minute) // past midnight UTC: a new day, a new cap
	if !s.Accepts([]byte(ok)) {
		t.Error("a new day did not reset the cap")
	}
}

func TestNoCapAndNoRate(t *testing.T) {
	s := &Sampler{Sampling: Sampling{Rate: 1, DailyCap: -1,
		Routes: map[string]bool{"/v1/chat/completions": true}},
		Draw: func() float64 { return 0.999 }, Today: time.Now}
	for i := 0; i < 100; i++ {
		if !s.Drawn("POST", "/v1/chat/completions") || !s.Accepts([]byte(`{"model": "x"}`)) {
			t.Fatal("rate 1 without a cap must take every eligible request")
		}
	}
	s.Rate = 0
	if s.Eligible("POST", "/v1/chat/completions") || s.Drawn("POST", "/v1/chat/completions") {
		t.Error("at rate 0 no request can be recorded, so no body needs reading")
	}
}
