package fakes

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
)

// SNSDelivery is a notification an SNS HTTP subscription received.
type SNSDelivery struct {
	Type     string `json:"Type"`
	TopicArn string `json:"TopicArn"`
	Subject  string `json:"Subject"`
	Message  string `json:"Message"`
}

// SNSSubscriber is the HTTP endpoint subscribed to the goaws topic: it is
// how a test sees what was published.
type SNSSubscriber struct {
	*httptest.Server
	Got Recorder[SNSDelivery]
}

// NewSNSSubscriber starts the endpoint.
func NewSNSSubscriber() *SNSSubscriber {
	s := &SNSSubscriber{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d SNSDelivery
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&d); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if d.Type == "Notification" {
			s.Got.add(d)
		}
		w.WriteHeader(http.StatusOK)
	}))
	return s
}
