// Package fastjson decodes JSON with goccy/go-json, two to three times as
// fast as encoding/json on Klaxon's hot paths (alert payloads, stored
// groups), but only JSON that tidwall/gjson's validator (bounds-checked,
// a few times faster than encoding/json's json.Valid) accepts.
//
// goccy reads its input through unsafe pointers and trusts it to be well
// formed: FuzzGroupStateDecode found a body cut short inside a key that
// makes it read past the end of its buffer (an index out of range under
// the fuzzer's instrumentation, a silent out-of-bounds read without it).
// So malformed input, hostile or corrupt, never reaches goccy: it gets
// encoding/json's answer, as does text that is not UTF-8. Valid input goccy
// refuses, or panics on, falls back too, so an error is always
// encoding/json's (callers map its error types to messages that name the
// field) and input encoding/json takes is never refused.
package fastjson

import (
	"encoding/json"
	"fmt"
	"reflect"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/tidwall/gjson"
)

// Unmarshal is json.Unmarshal, done by goccy/go-json when data is valid
// JSON.
func Unmarshal(data []byte, v any) (err error) {
	// Not UTF-8: goccy keeps the bytes as they are where encoding/json
	// (and so Alertmanager) puts U+FFFD.
	if !utf8.Valid(data) || !gjson.ValidBytes(data) {
		return json.Unmarshal(data, v)
	}
	if goccy(data, v) == nil {
		return nil
	}
	// Whatever goccy filled in before it gave up is discarded.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	return json.Unmarshal(data, v)
}

// goccy is goccy/go-json's Unmarshal, a panic turned into an error.
func goccy(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("goccy/go-json panicked: %v", r)
		}
	}()
	return gojson.Unmarshal(data, v)
}
