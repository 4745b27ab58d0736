package main

import (
	"regexp"
	"testing"
	"time"
)

func TestSamplingRateCapRoutesModelsAndUsers(t *testing.T) {
	draws := []float64{0.05, 0.5, 0.01, 0.02, 0.03}
	day := time.Date(2026, 12, 1, 23, 59, 0, 0, time.UTC)
	s := &Sampler{
		Sampling: Sampling{Rate: 0.1, DailyCap: 2,
			Routes: map[string]bool{"/v1/chat/completions": true},
			Models: map[string]bool{"gpt-4o": true},
			Users:  regexp.MustCompile("^cust-"), ExcludeUsers: regexp.MustCompile("-test$")},
		Draw: func() float64 {
			d := draws[0]
			draws = append(draws[1:], d)
			return d
		},
		Today: func() time.Time { return day },
	}
	const chat = "/v1/chat/completions"
	ok := `{"model": "gpt-4o", "user": "cust-1", "messages": []}`
	for _, c := range []struct {
		method, path, body string
		want               bool
		why                string
	}{
		{"GET", chat, ok, false, "not a POST"},
		{"POST", "/v1/embeddings", ok, false, "another route"},
		{"POST", chat, `{"model": "gpt-4", "user": "cust-1"}`, false, "another model"},
		{"POST", chat, `{"model": "gpt-4o", "user": "staff-1"}`, false, "user not included"},
		{"POST", chat, `{"model": "gpt-4o", "user": "cust-1-test"}`, false, "user excluded"},
		{"POST", chat, `{"model": "gpt-4o", "user": 7}`, false, "a user that is not a string is none"},
		{"POST", chat, `[1, 2]`, false, "not an object"},
		{"POST", chat, `{"model": "gpt-4o",`, false, "not JSON"},
		{"POST", chat, ok, true, "draw 0.05 < 0.1"},
		{"POST", chat, ok, false, "draw 0.5"},
		{"POST", chat, ok, true, "draw 0.01: the day's second"},
		{"POST", chat, ok, false, "the cap, whatever the draw"},
	} {
		if got := s.Choose(c.method, c.path, []byte(c.body)); got != c.want {
			t.Errorf("%s: Choose = %v, want %v", c.why, got, c.want)
		}
	}
	day = day.Add(2 * time.Minute) // past midnight UTC: a new day, a new cap
	if !s.Choose("POST", chat, []byte(ok)) {
		t.Error("a new day did not reset the cap")
	}
}

func TestNoCapAndNoRate(t *testing.T) {
	s := &Sampler{Sampling: Sampling{Rate: 1, DailyCap: -1,
		Routes: map[string]bool{"/v1/chat/completions": true}},
		Draw: func() float64 { return 0.999 }, Today: time.Now}
	for i := 0; i < 100; i++ {
		if !s.Choose("POST", "/v1/chat/completions", []byte(`{"model": "x"}`)) {
			t.Fatal("rate 1 without a cap must take every eligible request")
		}
	}
	s.Rate = 0
	if s.Eligible("POST", "/v1/chat/completions") {
		t.Error("at rate 0 no body needs reading")
	}
}
