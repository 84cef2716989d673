package deploy

import (
	"net/netip"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func itoa(i int32) string { return strconv.Itoa(int(i)) }

func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(l))
}

func hasServicePort(r *rendered, name string, port int32) bool {
	for _, s := range r.Services {
		for _, p := range s.Spec.Ports {
			if s.Name == name && p.Port == port {
				return true
			}
		}
	}
	return false
}

// claimed: the volume is a PersistentVolumeClaim of the pod.
func claimed(r *rendered, w workload, volume string) bool {
	for _, s := range r.StatefulSets {
		if s.Name != w.Name {
			continue
		}
		for _, c := range s.Spec.VolumeClaimTemplates {
			if c.Name == volume {
				return true
			}
		}
	}
	for _, v := range w.Template.Spec.Volumes {
		if v.Name == volume && v.PersistentVolumeClaim != nil {
			return true
		}
	}
	return false
}

// checkPDB: exactly one PodDisruptionBudget covers the workload's pods, in
// its namespace, and it lets at least one pod go (a budget that forbids
// every eviction blocks node drains forever).
func checkPDB(t *testing.T, r *rendered, w workload) {
	t.Helper()
	n := 0
	for _, p := range r.PDBs {
		if p.Namespace == w.Namespace && selects(p.Spec.Selector, w.Template.Labels) {
			n++
			if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() < 1 {
				t.Errorf("PDB %s: want maxUnavailable >= 1", p.Name)
			}
		}
	}
	if n != 1 {
		t.Errorf("%s %s: %d PodDisruptionBudgets cover its pods, want 1", w.Kind, w.Name, n)
	}
}

// checkServices: every Service selects pods of this overlay, and every
// targetPort is a port those pods have.
func checkServices(t *testing.T, r *rendered) {
	t.Helper()
	for _, s := range r.Services {
		var pods []corev1.PodTemplateSpec
		for _, w := range r.workloads() {
			if w.Namespace == s.Namespace && selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w.Template.Labels) {
				pods = append(pods, w.Template)
			}
		}
		if len(pods) == 0 {
			t.Errorf("Service %s selects no pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			for _, pod := range pods {
				if containerPort(pod.Spec.Containers[0], p.TargetPort) == 0 {
					t.Errorf("Service %s: targetPort %s is not a port of pods %v", s.Name, p.TargetPort.String(), pod.Labels)
				}
			}
		}
	}
}

// checkServiceMonitor: the ServiceMonitor selects a Service of its namespace
// that has the port it scrapes, and that Service reaches every Klaxon pod.
func checkServiceMonitor(t *testing.T, r *rendered) {
	t.Helper()
	if len(r.ServiceMonitors) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(r.ServiceMonitors))
	}
	sm := r.ServiceMonitors[0].Object
	sel := sm["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any)
	want := map[string]string{}
	for k, v := range sel {
		want[k], _ = v.(string)
	}
	port := sm["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["port"]
	found := false
	for _, s := range r.Services {
		if !selects(&metav1.LabelSelector{MatchLabels: want}, s.Labels) || s.Namespace != r.ServiceMonitors[0].GetNamespace() {
			continue
		}
		found = true
		if !hasServicePort(r, s.Name, 9095) || s.Spec.Ports[0].Name != port {
			t.Errorf("ServiceMonitor scrapes port %v, Service %s has %v", port, s.Name, s.Spec.Ports)
		}
		for _, w := range r.workloads() {
			if w.Template.Labels["app.kubernetes.io/name"] == "klaxon" && !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w.Template.Labels) {
				t.Errorf("ServiceMonitor's Service %s misses %s", s.Name, w.Name)
			}
		}
	}
	if !found {
		t.Errorf("ServiceMonitor selects no Service (%v)", want)
	}
}

// peer is one end of a connection the NetworkPolicies are asked about.
type peer struct {
	pod labels.Set
	ns  labels.Set // the namespace's labels
	ip  netip.Addr // for egress outside the cluster
}

func ns(name string, l ...string) labels.Set {
	s := labels.Set{"kubernetes.io/metadata.name": name}
	for i := 0; i+1 < len(l); i += 2 {
		s[l[i]] = l[i+1]
	}
	return s
}

// allowed evaluates the overlay's NetworkPolicies for a TCP connection from
// src to dst:port the way the API defines them: a direction is open unless a
// policy of that type selects the pod, then open only if some rule of such a
// policy admits the peer and the port. Every object is in namespace klaxon.
func allowed(r *rendered, src, dst peer, port int32) bool {
	return direction(r, dst, src, port, networkingv1.PolicyTypeIngress) && direction(r, src, dst, port, networkingv1.PolicyTypeEgress)
}

func direction(r *rendered, self, other peer, port int32, typ networkingv1.PolicyType) bool {
	if self.pod == nil || self.ns.Get("kubernetes.io/metadata.name") != "klaxon" {
		return true // not ours: outside these policies
	}
	isolated := false
	for _, p := range r.NetworkPolicies {
		if !selectsOrAll(&p.Spec.PodSelector, self.pod) || !hasType(p, typ) {
			continue
		}
		isolated = true
		var rules []struct {
			peers []networkingv1.NetworkPolicyPeer
			ports []networkingv1.NetworkPolicyPort
		}
		if typ == networkingv1.PolicyTypeIngress {
			for _, rl := range p.Spec.Ingress {
				rules = append(rules, struct {
					peers []networkingv1.NetworkPolicyPeer
					ports []networkingv1.NetworkPolicyPort
				}{rl.From, rl.Ports})
			}
		} else {
			for _, rl := range p.Spec.Egress {
				rules = append(rules, struct {
					peers []networkingv1.NetworkPolicyPeer
					ports []networkingv1.NetworkPolicyPort
				}{rl.To, rl.Ports})
			}
		}
		for _, rl := range rules {
			if portMatches(rl.ports, port) && peerMatches(rl.peers, self, other) {
				return true
			}
		}
	}
	return !isolated
}

func hasType(p *networkingv1.NetworkPolicy, typ networkingv1.PolicyType) bool {
	for _, t := range p.Spec.PolicyTypes {
		if t == typ {
			return true
		}
	}
	return false
}

// selectsOrAll: an empty selector selects everything (unlike selects).
func selectsOrAll(sel *metav1.LabelSelector, l labels.Set) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(l)
}

func portMatches(ports []networkingv1.NetworkPolicyPort, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Port == nil || (p.Port.IntValue() == int(port) && (p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP)) {
			return true
		}
	}
	return false
}

func peerMatches(peers []networkingv1.NetworkPolicyPeer, self, other peer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			if other.pod != nil {
				continue // pod IPs: not modelled; the policies use selectors for pods
			}
			if pfx, err := netip.ParsePrefix(p.IPBlock.CIDR); err == nil && pfx.Contains(other.ip) {
				excluded := false
				for _, e := range p.IPBlock.Except {
					if ex, err := netip.ParsePrefix(e); err == nil && ex.Contains(other.ip) {
						excluded = true
					}
				}
				if !excluded {
					return true
				}
			}
		case other.pod == nil:
			continue
		case p.NamespaceSelector != nil && p.PodSelector != nil:
			if selectsOrAll(p.NamespaceSelector, other.ns) && selectsOrAll(p.PodSelector, other.pod) {
				return true
			}
		case p.NamespaceSelector != nil:
			if selectsOrAll(p.NamespaceSelector, other.ns) {
				return true
			}
		case p.PodSelector != nil:
			if labels.Equals(other.ns, self.ns) && selectsOrAll(p.PodSelector, other.pod) {
				return true
			}
		}
	}
	return false
}

// checkNetworkPolicies asks the policies the questions the deployment
// depends on, with pods labelled as the overlay labels them.
func checkNetworkPolicies(t *testing.T, r *rendered) {
	t.Helper()
	klaxonNS := ns("klaxon")
	pods := map[string]peer{}
	for _, w := range r.workloads() {
		pods[w.Name] = peer{pod: labels.Set(w.Template.Labels), ns: klaxonNS}
	}
	role := func(label string) []string {
		var out []string
		for _, w := range r.workloads() {
			if w.Template.Labels[label] == "true" {
				out = append(out, w.Name)
			}
		}
		if len(out) == 0 {
			t.Fatalf("no pod labelled %s", label)
		}
		return out
	}
	prometheus := peer{pod: labels.Set{"app.kubernetes.io/name": "prometheus"}, ns: ns("monitoring")}
	alertmanager := peer{pod: labels.Set{"app.kubernetes.io/name": "alertmanager"}, ns: ns("observability", "klaxon.dev/client", "true")}
	stranger := peer{pod: labels.Set{"app": "web"}, ns: ns("default")}
	neighbour := peer{pod: labels.Set{"app": "debug"}, ns: klaxonNS}
	internet := peer{ip: netip.MustParseAddr("203.0.113.7")}
	metadata := peer{ip: netip.MustParseAddr("169.254.169.254")}

	for _, name := range role("klaxon.dev/http") {
		for _, from := range []peer{prometheus, alertmanager} {
			if !allowed(r, from, pods[name], 9095) {
				t.Errorf("%v in %v cannot reach ingest on %s:9095", from.pod, from.ns, name)
			}
		}
		if allowed(r, stranger, pods[name], 9095) {
			t.Errorf("a pod of an unlabelled namespace reaches ingest on %s", name)
		}
	}
	for _, name := range role("klaxon.dev/admin") {
		if !allowed(r, alertmanager, pods[name], 9096) || allowed(r, stranger, pods[name], 9096) {
			t.Errorf("admin gRPC on %s: want open to client namespaces only", name)
		}
	}
	for name, p := range pods {
		if p.pod["app.kubernetes.io/name"] != "klaxon" {
			continue
		}
		if !allowed(r, prometheus, p, 9095) {
			t.Errorf("Prometheus cannot scrape %s", name)
		}
		notifier := p.pod["klaxon.dev/notifier"] == "true"
		if allowed(r, p, internet, 443) != notifier {
			t.Errorf("%s: egress to the internet on 443 = %v, want %v (notifiers only)", name, !notifier, notifier)
		}
		if allowed(r, p, metadata, 443) || allowed(r, p, metadata, 80) {
			t.Errorf("%s reaches the cloud metadata service", name)
		}
	}
	// NATS (microservices): clients only from Klaxon pods, routes from peers.
	if nats, ok := pods["nats"]; ok {
		for name, p := range pods {
			isKlaxon := p.pod["app.kubernetes.io/name"] == "klaxon"
			if isKlaxon && !allowed(r, p, nats, 4222) {
				t.Errorf("%s cannot reach NATS", name)
			}
		}
		for _, from := range []peer{neighbour, stranger, prometheus, alertmanager} {
			if allowed(r, from, nats, 4222) || allowed(r, from, nats, 6222) {
				t.Errorf("%v in %v reaches NATS", from.pod, from.ns)
			}
		}
		if !allowed(r, nats, nats, 6222) {
			t.Error("NATS nodes cannot route to each other on 6222")
		}
	}
}
