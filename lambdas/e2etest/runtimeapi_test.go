package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runtimeAPI serves the Lambda Runtime API (version 2018-06-01) the way
// Lambda does for one execution environment:
//
//	GET  /2018-06-01/runtime/invocation/next            → 200, event body, headers
//	     Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn, -Trace-Id
//	POST /2018-06-01/runtime/invocation/{id}/response   → 202
//	POST /2018-06-01/runtime/invocation/{id}/error      → 202 (Lambda-Runtime-Function-Error-Type)
//	POST /2018-06-01/runtime/init/error                 → 202
//
// An unknown request id gets 400 InvalidRequestID, as the real API answers.
type runtimeAPI struct {
	*httptest.Server
	function string
	queue    chan *invocation
	mu       sync.Mutex
	inflight map[string]*invocation
	seq      atomic.Int64
	initErr  chan initError
}

type invocation struct {
	id      string
	payload []byte
	done    chan result
}

// result is what the function posted back for one invocation.
type result struct {
	body      []byte
	isError   bool
	errorType string
}

type initError struct {
	errorType string
	body      []byte
}

func newRuntimeAPI(function string) *runtimeAPI {
	r := &runtimeAPI{
		function: function,
		queue:    make(chan *invocation),
		inflight: map[string]*invocation{},
		initErr:  make(chan initError, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, req *http.Request) {
		r.finish(w, req, false)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, req *http.Request) {
		r.finish(w, req, true)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		select {
		case r.initErr <- initError{errorType: req.Header.Get("Lambda-Runtime-Function-Error-Type"), body: body}:
		default:
		}
		accepted(w)
	})
	r.Server = httptest.NewServer(mux)
	return r
}

// addr is the value for AWS_LAMBDA_RUNTIME_API: host:port, no scheme.
func (r *runtimeAPI) addr() string { return strings.TrimPrefix(r.URL, "http://") }

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

// next blocks, as the real endpoint does, until there is an event.
func (r *runtimeAPI) next(w http.ResponseWriter, req *http.Request) {
	var inv *invocation
	select {
	case inv = <-r.queue:
	case <-req.Context().Done():
		return
	}
	r.mu.Lock()
	r.inflight[inv.id] = inv
	r.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:"+r.function)
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.payload)
}

func (r *runtimeAPI) finish(w http.ResponseWriter, req *http.Request, isError bool) {
	id := req.PathValue("id")
	r.mu.Lock()
	inv, ok := r.inflight[id]
	delete(r.inflight, id)
	r.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}`)
		return
	}
	body, _ := io.ReadAll(req.Body)
	res := result{body: body, isError: isError, errorType: req.Header.Get("Lambda-Runtime-Function-Error-Type")}
	if isError && res.errorType == "" {
		res.errorType = req.Trailer.Get("Lambda-Runtime-Function-Error-Type")
	}
	accepted(w)
	inv.done <- res
}

// invoke queues payload for the function and waits for its answer.
func (r *runtimeAPI) invoke(t *testing.T, payload []byte) result {
	t.Helper()
	inv := &invocation{
		id:      fmt.Sprintf("8476a536-e9f4-11e8-9739-%012d", r.seq.Add(1)),
		payload: payload,
		done:    make(chan result, 1),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	select {
	case r.queue <- inv:
	case <-ctx.Done():
		t.Fatalf("%s never asked for the next invocation", r.function)
	}
	select {
	case res := <-inv.done:
		return res
	case <-ctx.Done():
		t.Fatalf("%s did not answer invocation %s", r.function, inv.id)
	}
	return result{}
}

// mustSucceed invokes and fails the test on a function error.
func (r *runtimeAPI) mustSucceed(t *testing.T, payload []byte) []byte {
	t.Helper()
	res := r.invoke(t, payload)
	if res.isError {
		t.Fatalf("%s returned an error (%s): %s", r.function, res.errorType, res.body)
	}
	return res.body
}

func (r *runtimeAPI) awaitInitError(t *testing.T) initError {
	t.Helper()
	select {
	case ie := <-r.initErr:
		return ie
	case <-time.After(30 * time.Second):
		t.Fatal("no init error reported")
	}
	return initError{}
}

// errorMessage decodes the Runtime API error body.
func errorMessage(b []byte) string {
	var e struct {
		ErrorMessage string `json:"errorMessage"`
	}
	_ = json.Unmarshal(b, &e)
	return e.ErrorMessage
}
