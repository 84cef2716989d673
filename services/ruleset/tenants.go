package ruleset

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Tenants is rules/tenants.yml: hashed bearer tokens and limits per tenant.
type Tenants struct {
	Tenants     map[string]TenantAuth `yaml:"tenants"`
	AdminTokens []string              `yaml:"admin_tokens"`

	// mu guards the fields against Replace (a reload). Read them through
	// the methods once the Tenants is in use.
	mu sync.RWMutex
}

// Replace takes n's tenants, tokens and limits (a reload of tenants.yml):
// a rotated or added token is accepted, a removed one refused, from now on.
func (t *Tenants) Replace(n *Tenants) {
	n.mu.RLock()
	tenants, admins := n.Tenants, n.AdminTokens
	n.mu.RUnlock()
	t.mu.Lock()
	t.Tenants, t.AdminTokens = tenants, admins
	t.mu.Unlock()
}

// Limits returns tenant's limits (zero: none).
func (t *Tenants) Limits(tenant string) Limits {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.Tenants[tenant].Limits
}

// TenantAuth holds one tenant's token hashes and limits.
type TenantAuth struct {
	Tokens []string `yaml:"tokens"`
	Limits Limits   `yaml:"limits"`
}

// Limits per tenant (0 = unlimited).
type Limits struct {
	IngestPerSecond float64 `yaml:"ingest_per_second"`
	MaxActiveAlerts int     `yaml:"max_active_alerts"`
	MaxSilences     int     `yaml:"max_silences"`
}

// LoadTenants reads and validates a tenants file.
func LoadTenants(path string) (*Tenants, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--auth needs %s: %w", path, err)
	}
	var t Tenants
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, yamlError(path, err)
	}
	for name, ta := range t.Tenants {
		for _, h := range ta.Tokens {
			if err := checkHash(h); err != nil {
				return nil, fmt.Errorf("%s: tenant %s: %w", path, name, err)
			}
		}
	}
	for _, h := range t.AdminTokens {
		if err := checkHash(h); err != nil {
			return nil, fmt.Errorf("%s: admin_tokens: %w", path, err)
		}
	}
	return &t, nil
}

func checkHash(h string) error {
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	if !ok {
		return fmt.Errorf("token hash %q: want the form sha256:<hex>", h)
	}
	if b, err := hex.DecodeString(hexPart); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("token hash %q: want sha256:<64 hex digits>", h)
	}
	return nil
}

// HashToken returns the form stored in tenants.yml.
func HashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(s[:])
}

func matchAny(hashes []string, h string) bool {
	ok := 0
	for _, x := range hashes {
		ok |= subtle.ConstantTimeCompare([]byte(x), []byte(h))
	}
	return ok == 1
}

// IsAdmin reports whether token is an admin token.
func (t *Tenants) IsAdmin(token string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return matchAny(t.AdminTokens, HashToken(token))
}

// TokenTenant returns the tenant a token belongs to ("" if none).
func (t *Tenants) TokenTenant(token string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	h := HashToken(token)
	for name, ta := range t.Tenants {
		if matchAny(ta.Tokens, h) {
			return name
		}
	}
	return ""
}

// AuthError is a 401 or 403 decision.
type AuthError struct {
	Status int
	Msg    string
}

func (e *AuthError) Error() string { return e.Msg }

// Authorize decides which tenant token may act for. want is the tenant the
// caller named ("" = the token's own tenant).
func (t *Tenants) Authorize(token, want string) (string, error) {
	if token == "" {
		return "", &AuthError{Status: http.StatusUnauthorized, Msg: "missing bearer token"}
	}
	if t.IsAdmin(token) {
		if want == "" {
			return "", &AuthError{Status: http.StatusBadRequest, Msg: "admin tokens must name a tenant in X-Scope-OrgID"}
		}
		return want, nil
	}
	own := t.TokenTenant(token)
	if own == "" {
		return "", &AuthError{Status: http.StatusUnauthorized, Msg: "unknown bearer token"}
	}
	if want != "" && want != own {
		return "", &AuthError{Status: http.StatusForbidden, Msg: fmt.Sprintf("token does not belong to tenant %q", want)}
	}
	return own, nil
}

// BearerToken extracts the token of an Authorization: Bearer header.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}
