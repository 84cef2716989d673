package peers

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Gate is an HTTP proxy in front of a target (a webhook sink). It can listen
// on a chosen address, so a test can point a config at a port where nothing
// listens yet and bring the target up later, and it can withhold the answer
// to a request the target has already accepted: the window where the
// sender cannot know its request went through.
type Gate struct {
	target string
	addr   string
	client *http.Client
	hold   holds
}

// NewGate proxies every request to target (a base URL; the path is kept). It
// listens on addr, or on a free loopback port when addr is empty.
func NewGate(t testing.TB, addr, target string) *Gate {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{target: target, addr: l.Addr().String(), client: &http.Client{Timeout: 10 * time.Second}}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return g
}

// URL is the gate's base URL.
func (g *Gate) URL() string { return "http://" + g.addr }

// HoldNextAnswer forwards the next request to the target as usual but keeps
// the target's answer from the client until Release, or until the client
// goes away.
func (g *Gate) HoldNextAnswer(t testing.TB) *Hold {
	h := g.hold.arm()
	t.Cleanup(h.Release)
	return h
}

func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, g.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := g.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if h := g.hold.take(); h != nil && !h.block(r.Context()) {
		return // the client is gone without the answer
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}
