package fakes

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
)

// SSM is a fake of SSM GetParameter over the awsJson1_1 protocol: POST /
// with X-Amz-Target AmazonSSM.GetParameter. Unknown names get 400
// {"__type":"ParameterNotFound"}.
type SSM struct {
	*httptest.Server
	mu     sync.Mutex
	params map[string]string
}

// NewSSM starts the fake holding params (name → value, all SecureString).
func NewSSM(params map[string]string) *SSM {
	s := &SSM{params: params}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func (s *SSM) serve(w http.ResponseWriter, r *http.Request) {
	jsonErr := func(code int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "AmazonSSM.GetParameter" {
		jsonErr(http.StatusBadRequest, "UnknownOperationException", r.Header.Get("X-Amz-Target"))
		return
	}
	var in struct {
		Name           string `json:"Name"`
		WithDecryption bool   `json:"WithDecryption"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.Name == "" {
		jsonErr(http.StatusBadRequest, "ValidationException", "Name is required")
		return
	}
	s.mu.Lock()
	v, ok := s.params[in.Name]
	s.mu.Unlock()
	if !ok {
		jsonErr(http.StatusBadRequest, "ParameterNotFound", "")
		return
	}
	if !in.WithDecryption {
		v = "(encrypted)"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
		"Name": in.Name, "Type": "SecureString", "Value": v, "Version": 1,
	}})
}
