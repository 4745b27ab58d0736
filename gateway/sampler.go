package main

import (
	"encoding/json"
	"regexp"
	"sync"
	"time"
)

// Sampling says which requests are recorded: a share (Rate) of the POSTs to Routes for Models
// (all when empty) whose `user` field matches Users and not ExcludeUsers, at most DailyCap a UTC
// day (no cap when negative).
type Sampling struct {
	Rate         float64
	DailyCap     int
	Routes       map[string]bool
	Models       map[string]bool
	Users        *regexp.Regexp
	ExcludeUsers *regexp.Regexp
}

// Eligible says whether a request can be recorded at all: a POST to a sampled route, a rate
// above 0.
func (s *Sampling) Eligible(method, path string) bool {
	return method == "POST" && s.Routes[path] && s.Rate > 0
}

// Sampler decides per request. Draw and Today are the randomness and the clock (tests set them).
type Sampler struct {
	Sampling
	Draw  func() float64
	Today func() time.Time

	mu    sync.Mutex
	day   int64
	taken int
}

// requestFields is what sampling reads of a chat-completion request.
type requestFields struct {
	Model any `json:"model"`
	User  any `json:"user"`
}

// Drawn says whether a request is a candidate for recording, by its method and route and the
// rate's coin alone: only a drawn request's body is held and read (the rest stream through, a
// long prompt too). The coin is independent of what the body holds, so drawing it first takes
// the same share of the requests the filters keep.
func (s *Sampler) Drawn(method, path string) bool {
	return s.Eligible(method, path) && s.Draw() < s.Rate
}

// Accepts says whether a drawn request is recorded: its body (the request's JSON) passes the
// model and user filters, and the day's cap has room.
func (s *Sampler) Accepts(body []byte) bool {
	var f requestFields
	if !isObject(body) || json.Unmarshal(body, &f) != nil {
		return false
	}
	if len(s.Models) > 0 {
		model, _ := f.Model.(string)
		if !s.Models[model] {
			return false
		}
	}
	user, _ := f.User.(string)
	if s.Users != nil && !s.Users.MatchString(user) {
		return false
	}
	if s.ExcludeUsers != nil && s.ExcludeUsers.MatchString(user) {
		return false
	}
	return s.DailyCap < 0 || s.take()
}

func (s *Sampler) take() bool {
	day := s.Today().UTC().Unix() / 86400
	s.mu.Lock()
	defer s.mu.Unlock()
	if day != s.day {
		s.day, s.taken = day, 0
	}
	if s.taken >= s.DailyCap {
		return false
	}
	s.taken++
	return true
}

func isObject(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}
