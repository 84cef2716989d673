package ruleset

import (
	"regexp"
	"strconv"

	amconfig "github.com/prometheus/alertmanager/config"
	"gopkg.in/yaml.v3"
)

// ReceiverCheck returns why a receiver cannot be served (one message per
// problem, each optionally starting with "<integration>_configs[i]: " so it
// is positioned at that integration). ruleset is a leaf package and does not
// know which integrations the notifier implements; the caller passes
// services/notify/receivers.Unsupported.
type ReceiverCheck func(*amconfig.Receiver) []string

// Option configures Load.
type Option func(*options)

type options struct {
	receiverChecks []ReceiverCheck
}

// WithReceiverCheck adds a check run on every receiver of every tenant.
func WithReceiverCheck(f ReceiverCheck) Option {
	return func(o *options) { o.receiverChecks = append(o.receiverChecks, f) }
}

func buildOptions(opts []Option) *options {
	o := &options{}
	for _, f := range opts {
		f(o)
	}
	return o
}

var integrationPathRE = regexp.MustCompile(`^([a-z0-9_]+)\[(\d+)\]`)

// checkReceivers runs the receiver checks of o on cfg, positioning each
// message at the receiver (or the integration it names) in root.
func (o *options) checkReceivers(path string, root *yaml.Node, cfg *amconfig.Config) []error {
	if len(o.receiverChecks) == 0 {
		return nil
	}
	_, seq := mapGet(root, "receivers")
	var errs []error
	for i := range cfg.Receivers {
		rcv := &cfg.Receivers[i]
		node := root
		for _, item := range seqItems(seq) {
			if _, n := mapGet(item, "name"); n != nil && n.Value == rcv.Name {
				node = item
				break
			}
		}
		for _, check := range o.receiverChecks {
			for _, msg := range check(rcv) {
				n := node
				if m := integrationPathRE.FindStringSubmatch(msg); m != nil {
					idx, _ := strconv.Atoi(m[2])
					if _, list := mapGet(node, m[1]); list != nil && idx < len(list.Content) {
						n = list.Content[idx]
					}
				}
				errs = append(errs, &Error{File: path, Line: n.Line, Col: n.Column,
					Msg: "receiver " + strconv.Quote(rcv.Name) + ": " + msg})
			}
		}
	}
	return errs
}
