// slam-gateway-proxy is the shadow gateway's request path (`slam gateway` starts it and is its
// recorder): an OpenAI-compatible reverse proxy in front of the incumbent API model that forwards
// every request unchanged and offers a sample of the exchanges to the recorder after the answer
// went back.
//
// Why Go's net/http/httputil.ReverseProxy: it relays a streamed answer chunk by chunk at a few
// microseconds a chunk on every core (an asyncio proxy relays one chunk at a time per process:
// at 64 concurrent streams whose first tokens arrive together the last waited ~15 ms), it keeps
// the request and the answer as sent (hop-by-hop headers aside), it aborts the caller's
// connection when the upstream cuts its answer, and it is the standard library's, kept with Go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type config struct {
	listen, metricsListen, upstream, recorder string
	rate                                      float64
	dailyCap, queueSize, maxRecordBytes       int
	routes, models                            listFlag
	users, excludeUsers                       string
	shutdownTimeout, connectTimeout           time.Duration
	recorderTimeout                           time.Duration
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("slam-gateway-proxy", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", "0.0.0.0:8080", "address the feature calls")
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "address of /metrics and /healthz")
	fs.StringVar(&c.upstream, "upstream", "", "the incumbent API's origin")
	fs.StringVar(&c.recorder, "recorder", "", "the recorder's Unix socket (none: record nothing)")
	fs.Float64Var(&c.rate, "sample-rate", 0.1, "share of eligible requests recorded")
	fs.IntVar(&c.dailyCap, "daily-cap", -1, "at most this many recorded a UTC day (-1: no cap)")
	fs.Var(&c.routes, "route", "paths whose requests may be recorded (repeat)")
	fs.Var(&c.models, "model", "only requests to this model (repeat)")
	fs.StringVar(&c.users, "user", "", "only requests whose user matches this RE2 expression")
	fs.StringVar(&c.excludeUsers, "exclude-user", "", "never requests whose user matches this")
	fs.IntVar(&c.queueSize, "queue-size", 1000, "sampled requests that may wait to be written")
	fs.IntVar(&c.maxRecordBytes, "max-record-bytes", 4<<20, "larger answers are not recorded")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second,
		"on SIGTERM: time in-flight answers get to finish, then the queue to be written")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "upstream connect timeout")
	fs.DurationVar(&c.recorderTimeout, "recorder-timeout", 5*time.Minute,
		"longest wait for the recorder to take one exchange")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return c, nil
}

func buildSampler(c *config) (*Sampler, []string) {
	var problems []string
	s := &Sampler{Sampling: Sampling{Rate: c.rate, DailyCap: c.dailyCap,
		Routes: map[string]bool{}, Models: map[string]bool{}},
		Draw: rand.Float64, Today: time.Now}
	if len(c.routes) == 0 {
		c.routes = listFlag{"/v1/chat/completions"}
	}
	for _, r := range c.routes {
		s.Routes[r] = true
	}
	for _, m := range c.models {
		s.Models[m] = true
	}
	for _, p := range []struct {
		name, expr string
		into       **regexp.Regexp
	}{{"--user", c.users, &s.Users}, {"--exclude-user", c.excludeUsers, &s.ExcludeUsers}} {
		if p.expr == "" {
			continue
		}
		re, err := regexp.Compile(p.expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: not a valid regular expression for the "+
				"gateway (RE2 syntax: no look-arounds or back-references): %v", p.name, err))
			continue
		}
		*p.into = re
	}
	return s, problems
}

// logLine writes log lines as `slam gateway`'s Python logging does ("2026-12-05 14:15:28,711 ...").
type logLine struct{}

func (logLine) Write(p []byte) (int, error) {
	stamp := time.Now().Format("2006-01-02 15:04:05.000")
	stamp = stamp[:19] + "," + stamp[20:] + " "
	return os.Stderr.Write(append([]byte(stamp), p...))
}

func main() {
	log.SetFlags(0)
	log.SetOutput(logLine{})
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "error %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	upstream, err := url.Parse(c.upstream)
	if err != nil || (upstream.Scheme != "http" && upstream.Scheme != "https") || upstream.Host == "" {
		return fmt.Errorf("--upstream %q: an http(s) origin, e.g. https://api.openai.com", c.upstream)
	}
	sampler, problems := buildSampler(c)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\nerror "))
	}
	atLeastTwoPs()

	var mirror *Mirror
	metrics := NewMetrics(func() float64 {
		if mirror == nil {
			return 0
		}
		return mirror.Depth()
	})
	if c.recorder != "" {
		mirror = NewMirror(c.queueSize, c.recorder, c.recorderTimeout, metrics)
		go mirror.Run()
	}
	gateway := NewGateway(upstream, sampler, mirror, metrics, c.connectTimeout)
	gateway.MaxRecordBytes = c.maxRecordBytes

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("--port: cannot listen on %s (%v)", c.listen, unwrapSyscall(err))
	}
	server := &http.Server{Handler: gateway, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: log.New(logLine{}, "", 0)}
	var metricsServer *http.Server
	metricsPort := "-"
	if c.metricsListen != "" {
		mln, err := net.Listen("tcp", c.metricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--metrics-port: cannot listen on %s (%v)", c.metricsListen,
				unwrapSyscall(err))
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]bool{"ok": true})
		})
		metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		metricsPort = portOf(mln.Addr())
		go func() { _ = metricsServer.Serve(mln) }()
	}

	stop := make(chan os.Signal, 4)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT) // kept: a second signal changes nothing
	parent := os.Getppid()
	orphaned := make(chan struct{})
	go func() {
		for range time.Tick(time.Second) {
			if os.Getppid() != parent {
				close(orphaned)
				return
			}
		}
	}()
	served := make(chan error, 1)
	go func() { served <- server.Serve(ln) }()
	log.Printf("forwarding :%s to %s (metrics on :%s)", portOf(ln.Addr()), upstream.Redacted(),
		metricsPort)

	select {
	case <-stop:
	case <-orphaned:
		log.Printf("the gateway's parent is gone: stopping")
	case err := <-served:
		return fmt.Errorf("serving: %v", err)
	}
	deadline := time.Now().Add(c.shutdownTimeout)
	log.Printf("stopping: finishing in-flight answers (at most %.0f s)", c.shutdownTimeout.Seconds())
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	if err := server.Shutdown(ctx); err != nil {
		log.Printf("answers still in flight after %.0f s: closing them", c.shutdownTimeout.Seconds())
		_ = server.Close()
	}
	cancel()
	if mirror != nil {
		if left := mirror.Close(time.Until(deadline) + 5*time.Second); left > 0 {
			log.Printf("stopped with %d sampled requests unwritten", left)
		}
	}
	if metricsServer != nil {
		_ = metricsServer.Close()
	}
	log.Printf("stopped")
	return nil
}

// atLeastTwoPs keeps the scheduler's Ps at 2 or more, whatever set fewer (GOMAXPROCS=1 from
// `--workers 1`, a one-CPU affinity or cpuset): the floor the Go runtime itself applies under a
// CPU limit. With one P the scheduler polls the network only when it runs out of goroutines or
// on sysmon's 10 ms tick (golang/go#51651): the first requests of connections opened together
// waited for the others' handling (bench/README.md). A second P on one core costs a thread,
// not a core: the kernel still gives the process that core's time.
func atLeastTwoPs() {
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}

func portOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return fmt.Sprint(t.Port)
	}
	return a.String()
}

// unwrapSyscall turns "listen tcp 127.0.0.1:80: bind: address already in use" into its last
// part.
func unwrapSyscall(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}
