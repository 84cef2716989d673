package alerting

import (
	"net/http"
	"net/http/httptest"
)

func newServer(f http.HandlerFunc) *httptest.Server { return httptest.NewServer(f) }
