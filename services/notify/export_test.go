package notify

import "golang.org/x/time/rate"

// LimiterFor is the limiter that gates deliveries to tenant's receiver
// (the external tests read its decisions).
func (p *Pipeline) LimiterFor(tenant, receiver string) *rate.Limiter {
	return p.limiter(tenant, receiver)
}
