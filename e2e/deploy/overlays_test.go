package deploy

import (
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// runHelp is what `klaxon run --help` says: its flags and their env vars.
type runHelp struct{ flags, env map[string]bool }

func klaxonRunHelp(t *testing.T) runHelp {
	t.Helper()
	out, err := exec.Command(harness.Binary(t, "klaxon"), "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("klaxon run --help: %v\n%s", err, out)
	}
	h := runHelp{flags: map[string]bool{}, env: map[string]bool{}}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--(?:\[no-\])?([a-z][a-z0-9.\-]*)`).FindAllStringSubmatch(string(out), -1) {
		h.flags[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\(\$(KLAXON_[A-Z0-9_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		h.env[m[1]] = true
	}
	// DESIGN §2: these flags are the contract.
	for _, f := range []string{"target", "rules", "data", "http", "grpc", "nats", "nats.listen", "auth", "log.level", "log.format"} {
		if !h.flags[f] {
			t.Fatalf("klaxon run --help lacks --%s (or the parser broke):\n%s", f, out)
		}
	}
	if !h.env["KLAXON_NATS_LISTEN"] {
		t.Fatalf("klaxon run --help names no env vars:\n%s", out)
	}
	return h
}

// args turns a container's arguments into flag → value ("" for a bare
// boolean), failing on positional arguments after `run`.
func args(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	if len(c.Command) != 0 || len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("container %s: want args [run --flag=value...], got command %v args %v", c.Name, c.Command, c.Args)
	}
	out := map[string]string{}
	for _, a := range c.Args[1:] {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("container %s: argument %q: write flags as --name=value", c.Name, a)
			continue
		}
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out[k] = v
	}
	return out
}

func TestOverlays(t *testing.T) {
	help := klaxonRunHelp(t)
	for _, overlay := range overlays(t) {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, filepath.Join(root, "k8s", "overlays", overlay))
			targets := map[string]int{}
			for _, w := range r.workloads() {
				if w.Namespace != "klaxon" {
					t.Errorf("%s %s: namespace %q, want klaxon", w.Kind, w.Name, w.Namespace)
				}
				checkPDB(t, r, w)
				for _, c := range w.Template.Spec.Containers {
					checkContainer(t, w, c)
				}
				if w.Template.Labels["app.kubernetes.io/name"] != "klaxon" {
					continue
				}
				a := checkKlaxon(t, r, help, w)
				for _, tg := range strings.Split(a["target"], ",") {
					targets[tg]++
				}
			}
			checkServices(t, r)
			checkServiceMonitor(t, r)
			checkNetworkPolicies(t, r)
			switch overlay {
			case "single":
				if len(targets) != 1 || targets["all"] != 1 || len(r.StatefulSets) != 1 {
					t.Errorf("single: targets %v, %d StatefulSets; want one --target=all StatefulSet", targets, len(r.StatefulSets))
				}
			case "microservices":
				for _, tg := range []string{"receiver", "engine", "notifier", "admin"} {
					if targets[tg] != 1 {
						t.Errorf("microservices: %d workloads run --target=%s, want 1", targets[tg], tg)
					}
				}
				if len(r.Deployments) != 4 || len(r.StatefulSets) != 1 {
					t.Errorf("microservices: %d Deployments, %d StatefulSets; want 4 and the NATS StatefulSet", len(r.Deployments), len(r.StatefulSets))
				}
			}
		})
	}
}

// checkContainer: resources and probes for every container (Klaxon and NATS).
func checkContainer(t *testing.T, w workload, c corev1.Container) {
	t.Helper()
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Errorf("%s/%s: no cpu and memory requests", w.Name, c.Name)
	}
	if lim.Memory().IsZero() || lim.Memory().Cmp(*req.Memory()) < 0 {
		t.Errorf("%s/%s: memory limit %v below request %v or missing", w.Name, c.Name, lim.Memory(), req.Memory())
	}
	if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet == nil {
		t.Errorf("%s/%s: want HTTP readiness and liveness probes", w.Name, c.Name)
		return
	}
	for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if p != nil && p.HTTPGet != nil && containerPort(c, p.HTTPGet.Port) == 0 {
			t.Errorf("%s/%s: probe port %s is not a port of the container", w.Name, c.Name, p.HTTPGet.Port.String())
		}
	}
	if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("%s/%s: allowPrivilegeEscalation must be false", w.Name, c.Name)
	}
}

func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// checkKlaxon: a Klaxon pod runs `klaxon run` with real flags and env vars,
// probes /readyz and /healthz on its HTTP port, and mounts what its flags
// name: rules from the generated ConfigMaps, tenants.yml from a Secret with
// --auth, the data volume for the embedded server.
func checkKlaxon(t *testing.T, r *rendered, help runHelp, w workload) map[string]string {
	t.Helper()
	spec := w.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: want one klaxon container, got %d", w.Name, len(spec.Containers))
	}
	c := spec.Containers[0]
	a := args(t, c)
	for name := range a {
		if !help.flags[name] {
			t.Errorf("%s: klaxon run has no flag --%s", w.Name, name)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "KLAXON_") && !help.env[e.Name] {
			t.Errorf("%s: env %s is no flag of klaxon run", w.Name, e.Name)
		}
		if e.Value != "" && regexp.MustCompile(`(?i)token|password|secret|key`).MatchString(e.Name) {
			t.Errorf("%s: env %s holds a literal value; reference a Secret", w.Name, e.Name)
		}
	}
	target := a["target"]
	if target == "" {
		t.Errorf("%s: no --target", w.Name)
	}
	for _, tg := range strings.Split(target, ",") {
		if !slices.Contains([]string{"all", "receiver", "engine", "notifier", "admin"}, tg) {
			t.Errorf("%s: unknown target %q", w.Name, tg)
		}
	}
	has := func(tg string) bool { return target == "all" || slices.Contains(strings.Split(target, ","), tg) }

	// Probes: readiness /readyz (JetStream reachable, rules loaded), liveness
	// /healthz, on the port --http listens on.
	_, httpPort, _ := strings.Cut(a["http"], ":")
	if !strings.HasPrefix(a["http"], "0.0.0.0:") {
		t.Errorf("%s: --http=%s must listen on all interfaces for Services and probes", w.Name, a["http"])
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: readiness %s, liveness %s; want /readyz and /healthz", w.Name, c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if port := containerPort(c, p.HTTPGet.Port); port == 0 || httpPort != itoa(port) {
			t.Errorf("%s: probe on port %d, --http on %s", w.Name, port, httpPort)
		}
	}
	// gRPC: the admin target serves the API on 9096 for the klaxon-admin
	// Service; the others keep their gRPC listener (health only) on loopback.
	if has("admin") != (w.Template.Labels["klaxon.dev/admin"] == "true") {
		t.Errorf("%s: target %s but label klaxon.dev/admin=%q", w.Name, target, w.Template.Labels["klaxon.dev/admin"])
	}
	if has("admin") && (a["grpc"] != "0.0.0.0:9096" || containerPort(c, intstr.FromString("grpc")) != 9096) {
		t.Errorf("%s: admin wants --grpc=0.0.0.0:9096 and container port grpc 9096", w.Name)
	}
	if !has("admin") && !strings.HasPrefix(a["grpc"], "127.0.0.1:") {
		t.Errorf("%s: --grpc=%s exposes gRPC on a non-admin target", w.Name, a["grpc"])
	}
	if has("receiver") != (w.Template.Labels["klaxon.dev/http"] == "true") {
		t.Errorf("%s: target %s but label klaxon.dev/http=%q (the klaxon Service)", w.Name, target, w.Template.Labels["klaxon.dev/http"])
	}
	if has("notifier") != (w.Template.Labels["klaxon.dev/notifier"] == "true") {
		t.Errorf("%s: target %s but label klaxon.dev/notifier=%q (notification egress)", w.Name, target, w.Template.Labels["klaxon.dev/notifier"])
	}

	// NATS: embedded with its store on a PVC, or the cluster's Service.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if url := a["nats"]; url != "" {
		if url != "nats://nats:4222" || !hasServicePort(r, "nats", 4222) {
			t.Errorf("%s: --nats=%s; want nats://nats:4222 served by the nats Service of this overlay", w.Name, url)
		}
	} else {
		m, ok := mounts[a["data"]]
		if !ok || !claimed(r, w, m.Name) {
			t.Errorf("%s: embedded NATS but --data=%q is not on a PersistentVolumeClaim", w.Name, a["data"])
		}
		if v, ok := a["nats.listen"]; !ok || v != "" {
			t.Errorf("%s: embedded NATS should not listen (--nats.listen=), got %q", w.Name, v)
		}
	}

	// Rules: every tenant directory under --rules is a generated ConfigMap;
	// with --auth, rules/tenants.yml comes from a Secret.
	rules := a["rules"]
	tenants := 0
	for p, m := range mounts {
		if path.Dir(p) != rules {
			continue
		}
		v := volumes[m.Name]
		switch {
		case path.Base(p) == "tenants.yml":
			if v.Secret == nil || m.SubPath != "tenants.yml" {
				t.Errorf("%s: tenants.yml must come from a Secret (subPath tenants.yml)", w.Name)
			}
		case v.ConfigMap != nil:
			tenants++
			if r.configMap(v.ConfigMap.Name) == nil {
				t.Errorf("%s: rules volume %s names ConfigMap %s, which the overlay does not generate (hash suffix?)", w.Name, m.Name, v.ConfigMap.Name)
			}
		default:
			t.Errorf("%s: %s under --rules is neither a rules ConfigMap nor tenants.yml", w.Name, p)
		}
	}
	if tenants == 0 {
		t.Errorf("%s: no rules ConfigMap mounted under --rules=%s", w.Name, rules)
	}
	_, auth := a["auth"]
	if _, ok := mounts[rules+"/tenants.yml"]; ok != auth {
		t.Errorf("%s: --auth=%v but tenants.yml mounted=%v", w.Name, auth, ok)
	}
	// Notification credentials: a Secret volume, only where notifiers run.
	_, secrets := mounts["/etc/klaxon/secrets"]
	if secrets != has("notifier") || (secrets && volumes[mounts["/etc/klaxon/secrets"].Name].Secret == nil) {
		t.Errorf("%s: /etc/klaxon/secrets mounted=%v from a Secret, target %s", w.Name, secrets, target)
	}
	return a
}
