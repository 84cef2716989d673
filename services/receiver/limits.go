package receiver

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimits admits ingest per tenant with a token bucket per tenant; the
// burst is one second's worth, so a steady sender at the limit never waits.
type RateLimits struct {
	// PerSecond returns a tenant's limit (0 = unlimited).
	PerSecond func(tenant string) float64

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// Allow implements Limiter: n items for tenant, all or nothing.
func (l *RateLimits) Allow(tenant string, n int) bool {
	lim := l.PerSecond(tenant)
	if lim <= 0 {
		return true
	}
	l.mu.Lock()
	if l.limiters == nil {
		l.limiters = map[string]*rate.Limiter{}
	}
	rl, ok := l.limiters[tenant]
	if !ok || float64(rl.Limit()) != lim {
		burst := int(lim)
		if burst < 1 {
			burst = 1
		}
		rl = rate.NewLimiter(rate.Limit(lim), burst)
		l.limiters[tenant] = rl
	}
	l.mu.Unlock()
	// A batch larger than the burst could never pass; admit it if the bucket is full.
	if n > rl.Burst() {
		n = rl.Burst()
	}
	return rl.AllowN(time.Now(), n)
}
