package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// DropReasons are why a sampled request was not recorded. queue_full and too_large are counted
// here, store_unavailable too when the recorder cannot be reached; the rest are the recorder's
// answers (slam.gateway's _Writer: it parses, redacts and stores).
var DropReasons = []string{"queue_full", "store_unavailable", "too_large", "incumbent_error",
	"not_recordable", "duplicate"}

// Metrics are the gateway's, served on the metrics port (same names as the Grafana dashboard's
// gateway panels query).
type Metrics struct {
	Registry  *prometheus.Registry
	Forwarded *prometheus.CounterVec
	Sampled   prometheus.Counter
	Recorded  prometheus.Counter
	Dropped   *prometheus.CounterVec
	Cut       prometheus.Counter
	Added     prometheus.Histogram
}

// NewMetrics registers the gateway's metrics; depth reports the mirror queue's length.
func NewMetrics(depth func() float64) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slam_gateway_requests_forwarded_total",
			Help: "Requests forwarded to the incumbent, by the status it answered (502: it could " +
				"not be reached).",
		}, []string{"code"}),
		Sampled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slam_gateway_requests_sampled_total", Help: "Requests chosen for recording."}),
		Recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slam_gateway_requests_recorded_total",
			Help: "Sampled requests written to the results store."}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slam_gateway_requests_dropped_total",
			Help: "Sampled requests not recorded, by reason."}, []string{"reason"}),
		Cut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slam_gateway_streams_cut_total",
			Help: "Answers that ended early: the upstream cut its stream or the caller went away."}),
		Added: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "slam_gateway_added_latency_seconds",
			Help: "Time the gateway adds before the first byte of an answer.",
			Buckets: []float64{0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015,
				0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1},
		}),
	}
	for _, reason := range DropReasons {
		m.Dropped.WithLabelValues(reason)
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "slam_gateway_mirror_queue_depth", Help: "Sampled requests waiting to be written."},
		depth)
	r.MustRegister(m.Forwarded, m.Sampled, m.Recorded, m.Dropped, m.Cut, m.Added, queue,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
