package fakes

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
)

// SESEmail is one SendEmail request the fake accepted.
type SESEmail struct {
	From    string
	To      []string
	Subject string
	Text    string
}

// SES is a fake of the SES v2 SendEmail operation over its REST-JSON
// protocol: POST /v2/email/outbound-emails, SigV4-signed, with the JSON body
// the API reference defines. It requires FromEmailAddress, Destination with
// at least one address, and Content (Simple with Subject and Body, Raw, or
// Template); a bad request gets 400 with X-Amzn-ErrorType BadRequestException
// and {"message":…}, which the SDK turns into *types.BadRequestException.
type SES struct {
	*httptest.Server
	Got Recorder[SESEmail]
	n   atomic.Int64
}

// NewSES starts the fake; its URL is the BaseEndpoint for the sesv2 client.
func NewSES() *SES {
	s := &SES{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

type sesContent struct {
	Data    *string `json:"Data"`
	Charset string  `json:"Charset"`
}

type sesSendEmail struct {
	FromEmailAddress *string `json:"FromEmailAddress"`
	Destination      *struct {
		ToAddresses  []string `json:"ToAddresses"`
		CcAddresses  []string `json:"CcAddresses"`
		BccAddresses []string `json:"BccAddresses"`
	} `json:"Destination"`
	Content *struct {
		Simple *struct {
			Subject *sesContent `json:"Subject"`
			Body    *struct {
				Text *sesContent `json:"Text"`
				Html *sesContent `json:"Html"`
			} `json:"Body"`
		} `json:"Simple"`
		Raw      json.RawMessage `json:"Raw"`
		Template json.RawMessage `json:"Template"`
	} `json:"Content"`
}

func (s *SES) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2/email/outbound-emails" {
		sesError(w, http.StatusNotFound, "NotFoundException", "unknown operation "+r.Method+" "+r.URL.Path)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		sesError(w, http.StatusForbidden, "MissingAuthenticationTokenException", "request is not SigV4-signed")
		return
	}
	var in sesSendEmail
	if err := json.NewDecoder(io.LimitReader(r.Body, 10<<20)).Decode(&in); err != nil {
		sesError(w, http.StatusBadRequest, "BadRequestException", "invalid JSON: "+err.Error())
		return
	}
	if msg := validateSES(&in); msg != "" {
		sesError(w, http.StatusBadRequest, "BadRequestException", msg)
		return
	}
	e := SESEmail{From: *in.FromEmailAddress, To: in.Destination.ToAddresses}
	if c := in.Content.Simple; c != nil {
		e.Subject = *c.Subject.Data
		if c.Body.Text != nil && c.Body.Text.Data != nil {
			e.Text = *c.Body.Text.Data
		}
	}
	s.Got.add(e)
	writeJSON(w, http.StatusOK, map[string]string{"MessageId": fmt.Sprintf("0100018f-fake-%06d", s.n.Add(1))})
}

func validateSES(in *sesSendEmail) string {
	switch {
	case in.FromEmailAddress == nil || *in.FromEmailAddress == "":
		return "Missing required field FromEmailAddress"
	case !strings.Contains(*in.FromEmailAddress, "@"):
		return "Illegal address in FromEmailAddress"
	case in.Destination == nil:
		return "Missing required field Destination"
	case len(in.Destination.ToAddresses)+len(in.Destination.CcAddresses)+len(in.Destination.BccAddresses) == 0:
		return "Destination must have at least one recipient"
	case in.Content == nil:
		return "Missing required field Content"
	case in.Content.Simple == nil && in.Content.Raw == nil && in.Content.Template == nil:
		return "Content must contain one of Simple, Raw or Template"
	}
	if c := in.Content.Simple; c != nil {
		if c.Subject == nil || c.Subject.Data == nil {
			return "Missing required field Content.Simple.Subject.Data"
		}
		if c.Body == nil || (c.Body.Text == nil && c.Body.Html == nil) {
			return "Missing required field Content.Simple.Body"
		}
	}
	return ""
}

func sesError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("X-Amzn-ErrorType", typ)
	writeJSON(w, code, map[string]string{"message": msg})
}
