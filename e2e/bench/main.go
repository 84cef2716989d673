// Command bench measures Klaxon against a real Alertmanager on the same
// machine, in the same run: ingest rate (1 and 256 alerts per request),
// POST-to-webhook latency at a steady rate, memory per active alert (and per
// window-policy key), restart time and CPU per 100k alerts. Loopback only,
// bounded in count and time. `make bench` runs it; it prints a markdown
// table and writes the raw figures as JSON under bench/results/.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

var (
	klaxonBin = flag.String("klaxon", "bin/klaxon", "klaxon binary")
	amBin     = flag.String("alertmanager", "prometheus-alertmanager", "Alertmanager binary")
	duration  = flag.Duration("duration", 8*time.Second, "length of each ingest phase")
	active    = flag.Int("active", 100000, "active alerts (and policy keys) for the memory phase")
	rate      = flag.Int("rate", 1000, "alerts/s of the latency phase")
	out       = flag.String("out", "bench/results", "directory for the JSON results")
	phases    = flag.String("phases", "latency,single,batched,hold", "the phases to run, comma-separated: latency, single (1 alert/request), batched (256), hold (memory, CPU, restart)")
)

// selected says whether phase is among -phases.
func selected(phase string) bool {
	for _, p := range strings.Split(*phases, ",") {
		if strings.TrimSpace(p) == phase {
			return true
		}
	}
	return false
}

type system struct {
	name string
	url  string // the alert API
	// start runs the process in a mode: "notify" routes every alert to the
	// webhook sink, "null" to a receiver without integrations, "hold" also
	// counts every alert in a window policy (Klaxon).
	start func(mode string) *exec.Cmd
	ready string
	cmd   *exec.Cmd
	dir   string
	// routed reads how many alerts the router has put into their groups
	// (nil: not measured).
	routed func() float64
}

// fresh starts the system on empty storage and waits until it is ready.
func (s *system) fresh(mode string) {
	_ = os.RemoveAll(s.dir)
	s.cmd = s.start(mode)
	waitReady(s.ready, 60*time.Second)
}

type results map[string]map[string]float64 // figure → system → value

func main() {
	flag.Parse()
	sink := newSink()
	work, _ := os.MkdirTemp("", "klaxon-bench")
	defer os.RemoveAll(work)

	kx := klaxonSystem(work, sink.url)
	am := amSystem(work, sink.url)
	res := results{}
	// Phase by phase, the two systems one after the other, so a machine
	// that slows down for a minute (shared, noisy) skews both alike. The
	// ingest phases, the noisiest, run twice for each system in the order
	// Klaxon, Alertmanager, Alertmanager, Klaxon, and report the mean: a
	// drift in the machine's speed during the four runs cancels out.
	if selected("latency") {
		for _, s := range []*system{kx, am} {
			progress("== %s: latency", s.name)
			latencyPhase(s, sink, res)
		}
	}
	for _, phase := range []struct {
		name string
		run  func(*system, results)
	}{{"single", ingestSingle}, {"batched", ingestBatched}} {
		if !selected(phase.name) {
			continue
		}
		sum := results{}
		for _, s := range []*system{kx, am, am, kx} {
			phase.run(s, sum)
		}
		for fig, by := range sum {
			for sys, v := range by {
				res.put(fig, sys, v/2)
			}
		}
	}
	if selected("hold") {
		for _, s := range []*system{kx, am} {
			progress("== %s: memory, CPU and restart", s.name)
			holdPhase(s, res)
		}
		progress("== %s: memory, every alert in one group", am.name)
		oneGroupHoldPhase(am, res)
	}
	if len(res) == 0 {
		fmt.Fprintln(os.Stderr, "bench: no phase ran; -phases takes latency, single, batched, hold")
		os.Exit(2)
	}
	print(res)
	save(res)
}

// latencyPhase measures POST→webhook on a fresh process whose only work is
// this load.
func latencyPhase(s *system, sink *sink, res results) {
	s.fresh("notify")
	p50, p90, p99, lost := latency(s.url, sink, *rate, *duration)
	res.put(fmt.Sprintf("latency phase: alerts refused or not delivered (of %d)", *rate*int(duration.Seconds())), s.name, float64(lost))
	res.put(fmt.Sprintf("latency POST→webhook p50 ms (%d alerts/s)", *rate), s.name, p50)
	res.put(fmt.Sprintf("latency POST→webhook p90 ms (%d alerts/s)", *rate), s.name, p90)
	res.put(fmt.Sprintf("latency POST→webhook p99 ms (%d alerts/s)", *rate), s.name, p99)
	stop(s.cmd)
}

// Ingest: alerts routed to a receiver without integrations, so both measure
// accepting (Klaxon: and durably storing, and routing) alerts. Beside each,
// what the generator itself spent per request (this process, all threads):
// CPU the system under test could not have. The phases add to runs, so two
// runs of a system sum.
func ingestSingle(s *system, runs results) {
	progress("== %s: ingest, 1 alert/request", s.name)
	s.fresh("null")
	gen0, sys0 := selfCPU(), cpuSeconds(s.cmd.Process.Pid)
	accepted, requests := ingest(s.url, 32, 1, *duration)
	runs.add("ingest alerts/s, 1 alert/request, 32 connections", s.name, accepted)
	runs.add("CPU µs per accepted alert while ingesting, 1 alert/request", s.name, perAlert(cpuSeconds(s.cmd.Process.Pid)-sys0, accepted))
	runs.add("load generator CPU µs per request, 1 alert/request", s.name, perRequest(selfCPU()-gen0, requests))
	stop(s.cmd)
}

func ingestBatched(s *system, runs results) {
	progress("== %s: ingest, 256 alerts/request", s.name)
	s.fresh("null")
	began := time.Now()
	gen0, sys0 := selfCPU(), cpuSeconds(s.cmd.Process.Pid)
	accepted, requests := ingest(s.url, 8, 256, *duration)
	runs.add("ingest alerts/s, 256 alerts/request, 8 connections", s.name, accepted)
	runs.add("CPU µs per accepted alert while ingesting, 256 alerts/request", s.name, perAlert(cpuSeconds(s.cmd.Process.Pid)-sys0, accepted))
	runs.add("load generator CPU µs per request, 256 alerts/request", s.name, perRequest(selfCPU()-gen0, requests))
	if s.routed != nil {
		// Klaxon acknowledges once an alert is stored; its engine routes
		// from the stream, and may still be working through a backlog.
		waitRouted(s, accepted*duration.Seconds(), 2*time.Minute)
		runs.add("routed alerts/s, 256 alerts/request (ingest until every alert is in its group)", s.name, s.routed()/time.Since(began).Seconds())
	}
	stop(s.cmd)
}

// oneGroupHoldPhase: Alertmanager's memory holding the same alerts in one
// group (group_by: [alertname]) instead of one group each. It runs a
// goroutine per aggregation group, so its memory per alert depends on the
// grouping far more than Klaxon's does; this row says by how much. Klaxon
// is not measured so: one of its groups holds at most what a third of
// max_payload stores, about 7,000 such alerts (README, the limits).
func oneGroupHoldPhase(s *system, res results) {
	s.fresh("one-group")
	base := rssBytes(s.cmd.Process.Pid)
	held := float64(hold(s.url, *active))
	if held == 0 {
		fmt.Fprintln(os.Stderr, "bench:", s.name, "accepted none of the alerts to hold")
		os.Exit(1)
	}
	time.Sleep(3 * time.Second) // let the heap settle before measuring
	res.put("bytes of RSS per active alert (delta), all in one group (Alertmanager only)", s.name, float64(rssBytes(s.cmd.Process.Pid)-base)/held)
	stop(s.cmd)
}

// holdPhase: memory and CPU of a fresh process holding `active` alerts, then
// the time to restart with them on disk.
func holdPhase(s *system, res results) {
	s.fresh("hold")
	base := rssBytes(s.cmd.Process.Pid)
	cpu0 := cpuSeconds(s.cmd.Process.Pid)
	held := float64(hold(s.url, *active))
	if held == 0 {
		fmt.Fprintln(os.Stderr, "bench:", s.name, "accepted none of the alerts to hold")
		os.Exit(1)
	}
	if s.routed != nil {
		// Klaxon routes from the stream: measure once every alert is in
		// its group (and counted in its policy), CPU included.
		waitRouted(s, held, 2*time.Minute)
	}
	cpu1 := cpuSeconds(s.cmd.Process.Pid)
	time.Sleep(3 * time.Second) // let the heap settle before measuring
	rss := rssBytes(s.cmd.Process.Pid)
	res.put(fmt.Sprintf("RSS MiB holding %d active alerts", *active), s.name, float64(rss)/(1<<20))
	res.put("bytes of RSS per active alert (delta)", s.name, float64(rss-base)/held)
	res.put("CPU seconds per 100k alerts ingested", s.name, (cpu1-cpu0)*100000/held)
	stop(s.cmd)
	t0 := time.Now()
	s.cmd = s.start("hold")
	waitReady(s.ready, 120*time.Second)
	res.put(fmt.Sprintf("restart to ready, s, %d alerts on disk", *active), s.name, time.Since(t0).Seconds())
	stop(s.cmd)
}

func klaxonSystem(work, sink string) *system {
	for _, kind := range []string{"notify", "null", "hold"} {
		rules := filepath.Join(work, "rules-"+kind, "default")
		_ = os.MkdirAll(rules, 0o755)
		policies := ""
		if kind == "hold" {
			// The memory phase also holds one window-policy key per alert.
			policies = `
policies:
  - name: per-instance
    match: ['alertname="Bench"']
    key: [instance]
    threshold: 1000
    window: 1h
    labels: {alertname: Flapping}
`
		}
		_ = os.WriteFile(filepath.Join(rules, "klaxon.yml"), []byte(config(kind == "notify", sink+"/klaxon")+policies), 0o644)
	}
	s := &system{name: "Klaxon", dir: filepath.Join(work, "kx-data")}
	addr, grpc := freeAddr(), freeAddr()
	s.url = "http://" + addr + "/api/v2/alerts"
	s.ready = "http://" + addr + "/readyz"
	s.routed = func() float64 {
		return metric("http://"+addr+"/metrics", `klaxon_engine_envelopes_total{kind="alert"}`)
	}
	s.start = func(mode string) *exec.Cmd {
		rules := filepath.Join(work, "rules-"+mode)
		return startCmd(*klaxonBin, "run", "--target=all", "--rules", rules, "--data", s.dir,
			"--http", addr, "--grpc", grpc, "--nats.listen", "", "--log.level", "error", "--notify.rate-limit", "0")
	}
	return s
}

// config is the same Alertmanager configuration for both systems.
func config(notify bool, url string) string {
	if !notify {
		return `
route:
  receiver: "null"
  group_by: ['...']
  group_wait: 0s
receivers:
  - name: "null"
`
	}
	return fmt.Sprintf(`
route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs: [{url: %q}]
`, url)
}

func amSystem(work, sink string) *system {
	for _, kind := range []string{"notify", "null"} {
		_ = os.WriteFile(filepath.Join(work, "alertmanager-"+kind+".yml"), []byte(config(kind == "notify", sink+"/alertmanager")), 0o644)
	}
	oneGroup := strings.Replace(config(false, ""), "group_by: ['...']", "group_by: [alertname]", 1)
	_ = os.WriteFile(filepath.Join(work, "alertmanager-one-group.yml"), []byte(oneGroup), 0o644)
	s := &system{name: "Alertmanager", dir: filepath.Join(work, "am-data")}
	addr := freeAddr()
	s.url = "http://" + addr + "/api/v2/alerts"
	s.ready = "http://" + addr + "/-/ready"
	s.start = func(mode string) *exec.Cmd {
		_ = os.MkdirAll(s.dir, 0o755)
		cfg := filepath.Join(work, "alertmanager-null.yml")
		if mode == "notify" || mode == "one-group" {
			cfg = filepath.Join(work, "alertmanager-"+mode+".yml")
		}
		return startCmd(*amBin, "--config.file="+cfg, "--storage.path="+s.dir, "--web.listen-address="+addr,
			"--cluster.listen-address=", "--log.level=error")
	}
	return s
}

var seq atomic.Int64

// alertJSON appends n unique alerts as a JSON array to b, without allocating
// (strconv into a stack buffer, not fmt).
func alertJSON(b *bytes.Buffer, n int) {
	var num [20]byte
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"labels":{"alertname":"Bench","instance":"10.`)
		b.Write(strconv.AppendInt(num[:0], seq.Add(1), 10))
		b.WriteString(`:9100","job":"node","severity":"warning"},"annotations":{"summary":"benchmark alert"}}`)
	}
	b.WriteByte(']')
}

// requestTimeout bounds each POST, as net/http's Client.Timeout did.
const requestTimeout = 30 * time.Second

// client is the HTTP client that POSTs alerts: fasthttp, not net/http. On a
// 2-core machine the generator shares the CPU with the system under test, and
// every µs it spends is one the system cannot have: with net/http's client it
// spent 85-110 µs of CPU per 1-alert request, up to half of the machine in
// the 1 alert/request phase, so that phase measured the generator as much as
// the system. fasthttp, with its requests, responses and body buffers reused,
// spends about half of that (the "load generator CPU" rows of the table say
// how much, per system). One HostClient per phase, at most conns connections
// to url's host; a request that finds them all busy waits for one, as with
// net/http.
func client(url string, conns int) *fasthttp.HostClient {
	host, _, _ := strings.Cut(strings.TrimPrefix(url, "http://"), "/")
	return &fasthttp.HostClient{
		Addr:               host,
		MaxConns:           conns,
		MaxConnWaitTimeout: requestTimeout,
	}
}

// newPost is a reusable POST of JSON to url; set its body with SetBodyRaw.
func newPost(url string) (*fasthttp.Request, *fasthttp.Response) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	return req, resp
}

// post sends req's body and reports whether the system answered 2xx (false on
// any error: the caller's loop decides whether to try again).
func post(cl *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, body []byte) bool {
	req.SetBodyRaw(body) // no copy: body is not touched until post returns
	if err := cl.DoTimeout(req, resp, requestTimeout); err != nil {
		return false
	}
	return resp.StatusCode()/100 == 2
}

// ingest posts as fast as the system accepts for d; only 2xx count. It
// returns the accepted alerts/s and the number of requests made (any outcome).
func ingest(url string, conns, batch int, d time.Duration) (float64, int64) {
	cl := client(url, conns)
	var ok, requests atomic.Int64
	stopAt := time.Now().Add(d)
	var wg sync.WaitGroup
	done := make(chan struct{})
	go ticker(fmt.Sprintf("ingest %d/request", batch), &ok, done)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := newPost(url)
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var b bytes.Buffer
			for time.Now().Before(stopAt) {
				b.Reset()
				alertJSON(&b, batch)
				requests.Add(1)
				if post(cl, req, resp, b.Bytes()) {
					ok.Add(int64(batch))
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	cl.CloseIdleConnections()
	return float64(ok.Load()) / d.Seconds(), requests.Load()
}

// selfCPU is the CPU time (user+system, all threads) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perAlert is the CPU seconds a system spent while ingesting at rate
// accepted alerts/s for the phase's duration, in µs per accepted alert (-1
// without any). Both systems are CPU-bound in the ingest phases, so the
// ratio of their throughputs follows the inverse ratio of these figures;
// Klaxon's engine routes while the receiver ingests, and is counted here,
// but what it still had to route when the phase ended is not.
func perAlert(cpuSeconds, accepted float64) float64 {
	n := accepted * duration.Seconds()
	if n <= 0 {
		return -1
	}
	return cpuSeconds * 1e6 / n
}

// perRequest is cpu per request in µs (-1 without requests).
func perRequest(cpu time.Duration, requests int64) float64 {
	if requests == 0 {
		return -1
	}
	return float64(cpu.Microseconds()) / float64(requests)
}

// latency posts one unique alert every 1/rate s and measures POST → sink.
// The percentiles are of the alerts delivered; lost counts the others
// (refused, or not at the sink 10 s after the last POST).
func latency(url string, s *sink, rate int, d time.Duration) (p50, p90, p99 float64, lost int) {
	cl := client(url, 64)
	s.reset()
	n := int(d.Seconds() * float64(rate))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := 0; i < n; i++ {
		<-tick.C
		id := fmt.Sprintf("lat-%d", seq.Add(1))
		body := fmt.Sprintf(`[{"labels":{"alertname":"Latency","id":%q}}]`, id)
		s.sent(id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := newPost(url)
			if !post(cl, req, resp, []byte(body)) {
				refused.Add(1)
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}()
		if i%rate == 0 {
			progress("latency: %d/%d sent, %d received", i, n, s.count())
		}
	}
	wg.Wait()
	cl.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for s.count() < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	l := s.latencies()
	progress("latency: %d/%d received, %d POSTs refused", len(l), n, refused.Load())
	if len(l) == 0 {
		return -1, -1, -1, n
	}
	sort.Float64s(l)
	q := func(p float64) float64 { return l[int(p*float64(len(l)-1))] }
	return q(.5), q(.9), q(.99), n - len(l)
}

// hold posts n unique alerts in batches of 256, a refused batch again up
// to five times, and returns how many were accepted: the per-alert figures
// divide by that, not by n.
func hold(url string, n int) int64 {
	cl := client(url, 4)
	var ok atomic.Int64
	done := make(chan struct{})
	go ticker("hold", &ok, done)
	var wg sync.WaitGroup
	per := n / 4
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := newPost(url)
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var b bytes.Buffer
			for sent := 0; sent < per; sent += 256 {
				b.Reset()
				alertJSON(&b, min(256, per-sent))
				for try := 1; try <= 5; try++ {
					if post(cl, req, resp, b.Bytes()) {
						ok.Add(int64(min(256, per-sent)))
						break
					}
					progress("hold: a batch refused (try %d of 5)", try)
					time.Sleep(time.Duration(try) * 100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	cl.CloseIdleConnections()
	if got := ok.Load(); got < int64(per*4) {
		progress("hold: only %d of %d alerts accepted", got, per*4)
	}
	return ok.Load()
}

func ticker(what string, n *atomic.Int64, done chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			progress("%s: %d alerts accepted", what, n.Load())
		}
	}
}

type sink struct {
	url     string
	mu      sync.Mutex
	pending map[string]time.Time
	lat     []float64
}

func newSink() *sink {
	s := &sink{pending: map[string]time.Time{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	s.url = "http://" + l.Addr().String()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Alerts []struct{ Labels map[string]string } `json:"alerts"`
		}
		_ = json.NewDecoder(r.Body).Decode(&m)
		now := time.Now()
		s.mu.Lock()
		for _, a := range m.Alerts {
			if t, ok := s.pending[a.Labels["id"]]; ok {
				s.lat = append(s.lat, float64(now.Sub(t).Microseconds())/1000)
				delete(s.pending, a.Labels["id"])
			}
		}
		s.mu.Unlock()
	}))
	return s
}

func (s *sink) reset()         { s.mu.Lock(); s.pending = map[string]time.Time{}; s.lat = nil; s.mu.Unlock() }
func (s *sink) sent(id string) { s.mu.Lock(); s.pending[id] = time.Now(); s.mu.Unlock() }
func (s *sink) count() int     { s.mu.Lock(); defer s.mu.Unlock(); return len(s.lat) }
func (s *sink) latencies() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]float64(nil), s.lat...)
}

func startCmd(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	return cmd
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func waitReady(url string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "bench: not ready:", url)
	os.Exit(1)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitRouted waits until s has routed n alerts, at most d.
func waitRouted(s *system, n float64, d time.Duration) {
	deadline := time.Now().Add(d)
	for s.routed() < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := s.routed(); got < n {
		progress("%s: routed only %.0f of %.0f alerts after %v", s.name, got, n, d)
	}
}

// metric reads one sample of a Prometheus text exposition (0 if absent).
func metric(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

func rssBytes(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuSeconds is utime+stime of the process (clock ticks of 100 Hz).
func cpuSeconds(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100
}

// add sums v into a figure without printing it (runs of a phase).
func (r results) add(figure, sys string, v float64) {
	if r[figure] == nil {
		r[figure] = map[string]float64{}
	}
	r[figure][sys] += v
	progress("%s: %s = %.2f (one run)", sys, figure, v)
}

func (r results) put(figure, sys string, v float64) {
	if r[figure] == nil {
		r[figure] = map[string]float64{}
	}
	r[figure][sys] = v
	progress("%s: %s = %.2f", sys, figure, v)
}

func print(r results) {
	figs := make([]string, 0, len(r))
	for f := range r {
		figs = append(figs, f)
	}
	sort.Strings(figs)
	fmt.Printf("\n| figure | Klaxon | Alertmanager | ratio |\n|---|---:|---:|---:|\n")
	for _, f := range figs {
		k, a := r[f]["Klaxon"], r[f]["Alertmanager"]
		_, hasK := r[f]["Klaxon"]
		_, hasA := r[f]["Alertmanager"]
		kx, am, ratio := "—", "—", "—"
		if hasK {
			kx = fmt.Sprintf("%.2f", k)
		}
		if hasA {
			am = fmt.Sprintf("%.2f", a)
		}
		if hasK && hasA && a != 0 {
			ratio = fmt.Sprintf("%.2f×", k/a)
		}
		fmt.Printf("| %s | %s | %s | %s |\n", f, kx, am, ratio)
	}
	fmt.Printf("\n%d cores, commit %s. Klaxon acknowledges an alert only once JetStream stored it (file storage); Alertmanager keeps alerts in memory. Ingest figures: the mean of two runs each, in the order Klaxon, Alertmanager, Alertmanager, Klaxon.\n", runtime.NumCPU(), commit())
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func save(r results) {
	_ = os.MkdirAll(*out, 0o755)
	name := filepath.Join(*out, time.Now().UTC().Format("2006-01-02T150405Z")+"-"+commit()+".json")
	data, _ := json.MarshalIndent(map[string]any{"cores": runtime.NumCPU(), "commit": commit(), "at": time.Now().UTC(), "results": r}, "", "  ")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return
	}
	fmt.Println("raw results:", name)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
