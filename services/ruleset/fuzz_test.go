package ruleset

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: the loader never panics, and every error it returns carries a
// position in the file it read.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(okAM))
	f.Add([]byte(okAM + "policies:\n  - name: p\n    match: ['a=\"b\"']\n    window: 5m\n    labels: {alertname: X}\n"))
	f.Add([]byte("route: {receiver: x, routes: [{receiver: y, matchers: ['a=~\"(']}]}\nreceivers: [{name: x}, {name: x}]\n"))
	f.Add([]byte("slos: [{name: s, objective: 99.9, period: 30d, events: {}, burn_rates: [{severity: page}]}]\n"))
	f.Add([]byte("groups: []\n"))
	f.Add([]byte("- [\n"))
	if b, err := os.ReadFile(filepath.Join("..", "..", "rules", "default", "klaxon.yml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "t"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "t", "r.yml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if err == nil {
			return
		}
		errs := []error{err}
		var j interface{ Unwrap() []error }
		if errors.As(err, &j) {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			var re *Error
			if !errors.As(e, &re) || re.File != path || re.Line < 1 || re.Col < 1 {
				t.Fatalf("error without a position: %#v", e)
			}
		}
	})
}
