package alerting

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// SSMAPI is the part of the SSM client Settings uses.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Settings reads a function's configuration. Every setting NAME comes either
// from the environment variable NAME or, when NAME_SSM_PARAM is set instead,
// from that SSM parameter (SecureString parameters are decrypted). Secrets use
// the SSM form so they never appear in plaintext in the function's
// configuration or in the CloudFormation template.
type Settings struct {
	Getenv func(string) string // nil: os.Getenv
	// SSM returns the SSM client; it is called only when a *_SSM_PARAM
	// variable is set, so functions without SSM settings never build one.
	SSM func(ctx context.Context) (SSMAPI, error)
}

// SSMSuffix marks the variable naming an SSM parameter.
const SSMSuffix = "_SSM_PARAM"

func (s *Settings) getenv(name string) string {
	if s.Getenv == nil {
		return os.Getenv(name)
	}
	return s.Getenv(name)
}

// Get returns the setting, or "" when neither variable is set.
func (s *Settings) Get(ctx context.Context, name string) (string, error) {
	if v := s.getenv(name); v != "" {
		return v, nil
	}
	param := s.getenv(name + SSMSuffix)
	if param == "" {
		return "", nil
	}
	if s.SSM == nil {
		return "", fmt.Errorf("setting %s: %s%s is set but no SSM client is available", name, name, SSMSuffix)
	}
	client, err := s.SSM(ctx)
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", name, err)
	}
	out, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(param), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("setting %s: read SSM parameter %s: %w", name, param, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", fmt.Errorf("setting %s: SSM parameter %s has no value", name, param)
	}
	return *out.Parameter.Value, nil
}

// Duration reads a Go duration ("30s", "5m"), or def when unset.
func (s *Settings) Duration(ctx context.Context, name string, def time.Duration) (time.Duration, error) {
	v, err := s.Get(ctx, name)
	if err != nil || v == "" {
		return def, err
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("setting %s: %w", name, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("setting %s: must be positive, got %s", name, v)
	}
	return d, nil
}

// List reads a comma-separated list, dropping empty items.
func (s *Settings) List(ctx context.Context, name string) ([]string, error) {
	v, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out, nil
}

// getter collects errors so a function reports every bad setting at once.
type getter struct {
	ctx  context.Context
	s    *Settings
	errs []error
}

func (g *getter) str(name string) string {
	v, err := g.s.Get(g.ctx, name)
	if err != nil {
		g.errs = append(g.errs, err)
	}
	return v
}

func (g *getter) list(name string) []string {
	v, err := g.s.List(g.ctx, name)
	if err != nil {
		g.errs = append(g.errs, err)
	}
	return v
}

func (g *getter) duration(name string, def time.Duration) time.Duration {
	v, err := g.s.Duration(g.ctx, name, def)
	if err != nil {
		g.errs = append(g.errs, err)
	}
	return v
}

func (g *getter) err() error { return errors.Join(g.errs...) }
