package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// bigTree is a route tree of n routes: n/10 teams, each with 10 services
// matched by equality and regex.
func bigTree(n int) string {
	var sb strings.Builder
	sb.WriteString(baseRoute + "route:\n  receiver: default\n  group_by: [alertname]\n  routes:\n")
	for team := 0; team < n/10; team++ {
		fmt.Fprintf(&sb, "    - matchers: ['team=\"t%d\"']\n      receiver: db\n      routes:\n", team)
		for svc := 0; svc < 9; svc++ {
			fmt.Fprintf(&sb, "        - matchers: ['service=~\"s%d|x%d\"', severity=critical]\n          receiver: ops\n", svc, svc)
		}
	}
	return sb.String()
}

// BenchmarkRouteMatch: Alertmanager's Route.Match over a 1,000-route tree,
// walked per alert ("walk") and through the engine's per-label-set cache
// ("cached", the engine's path: alerts are re-sent with the same labels).
func BenchmarkRouteMatch(b *testing.B) {
	tr := compileRules(loadTenant(b, "a", bigTree(1000)))
	sets := make([]model.LabelSet, 1000)
	for i := range sets {
		sets[i] = model.LabelSet{"alertname": "A", "team": model.LabelValue(fmt.Sprintf("t%d", i%100)),
			"service": model.LabelValue(fmt.Sprintf("s%d", i%9)), "severity": "critical", "pod": model.LabelValue(fmt.Sprint(i))}
	}
	b.Run("walk", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = tr.tree.Match(sets[i%len(sets)])
			i++
		}
	})
	b.Run("cached", func(b *testing.B) {
		labels := make([]Labels, len(sets))
		for i, ls := range sets {
			m := map[string]string{}
			for k, v := range ls {
				m[string(k)] = string(v)
			}
			labels[i] = LabelsFromMap(m)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			l := labels[i%len(labels)]
			_ = tr.match(l.Fingerprint(), l.LabelSet)
			i++
		}
	})
}

// BenchmarkSilenceMutes: one alert against 10,000 active silences.
func BenchmarkSilenceMutes(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			now := t0
			s := silence.NewMemory(silence.WithClock(func() time.Time { return now }))
			ctx := context.Background()
			for i := 0; i < n; i++ {
				ms := []silence.Matcher{{Name: "alertname", Value: fmt.Sprintf("A%d", i%500), IsEqual: true},
					{Name: "instance", Value: fmt.Sprintf("host-%d.*", i), IsRegex: true, IsEqual: true}}
				if i%10 == 0 { // some silences without an equality matcher
					ms = ms[1:]
				}
				if _, err := s.Set(ctx, &silence.Silence{Tenant: "a", Matchers: ms, EndsAt: t0.Add(time.Hour)}); err != nil {
					b.Fatal(err)
				}
			}
			ls := model.LabelSet{"alertname": "A7", "instance": "host-7:9100", "job": "node"}
			if len(s.Mutes("a", ls)) == 0 {
				b.Fatal("expected a match")
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Mutes("a", ls)
			}
		})
	}
}

// BenchmarkReceiveTick: the dispatcher's cost per alert (in-memory store).
func BenchmarkReceiveTick(b *testing.B) {
	tn := loadTenant(b, "a", bigTree(100))
	d := NewDispatcher(DispatcherConfig{Rules: func(string) *ruleset.Tenant { return tn }})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := alertOf(fmt.Sprintf("alertname=A%d,team=t%d,service=s%d,severity=critical", i%1000, i%10, i%9), t0, time.Hour)
		if err := d.Receive(ctx, "a", a, t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkEncodeGroup: writing a group's KV value, per group of one alert
// (an alert storm's groups by every label) and of 20, by hand and, for
// comparison, through goccy/go-json.
func BenchmarkEncodeGroup(b *testing.B) {
	for _, n := range []int{1, 20} {
		g := &GroupState{Tenant: "default", RouteID: "{}", RouteKey: "{}", Receiver: "team-a",
			Labels: LabelsFromMap(map[string]string{"alertname": "HighLatency"}), Next: At(time.Now()),
			Nflog: &NflogEntry{Firing: []string{"a", "b"}, At: time.Now()}}
		for i := range n {
			g.Alerts.Set(&Alert{Fingerprint: fmt.Sprintf("%016x", i),
				Labels:      LabelsFromMap(map[string]string{"alertname": "HighLatency", "instance": fmt.Sprintf("10.0.0.%d:9100", i), "job": "node", "severity": "page"}),
				Annotations: LabelsFromMap(map[string]string{"summary": "p99 above 500ms"}), StartsAt: At(time.Now()), UpdatedAt: At(time.Now()), Seq: uint64(i)})
		}
		b.Run(fmt.Sprintf("alerts=%d/hand", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := encodeGroup(g); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("alerts=%d/goccy", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := gojson.Marshal(storedGroup{ID: g.ID(), Key: g.Key(), groupFields: groupFields(*g)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
