package receiver_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/klaxon-sh/klaxon/services/receiver"
)

// Concurrent senders posting one alert each: every alert is acknowledged
// only once stored, and is in INGEST exactly once, however the receiver
// grouped the requests into messages.
func TestConcurrentSingleAlertsAreEachStoredOnce(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	const senders, each = 16, 20
	var wg sync.WaitGroup
	codes := make(chan int, senders*each)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf(`[{"labels":{"alertname":"Storm","instance":"%d-%d"}}]`, s, i)
				resp, err := http.Post(h.srv.URL+"/api/v2/alerts", "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				// Each sender is told of its own alert, whoever published it.
				if want := `{"status":"success","stored":1,"duplicates":0}`; strings.TrimSpace(string(raw)) != want {
					t.Errorf("answer %s, want %s", raw, want)
				}
				codes <- resp.StatusCode
			}
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Fatalf("status %d", c)
		}
	}
	seen := map[string]int{}
	for _, e := range h.stored() {
		seen[e.GetAlert().Labels["instance"]]++
	}
	if len(seen) != senders*each {
		t.Fatalf("%d distinct alerts stored, want %d", len(seen), senders*each)
	}
	for inst, n := range seen {
		if n != 1 {
			t.Fatalf("alert %s stored %d times", inst, n)
		}
	}
}
