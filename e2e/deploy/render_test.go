// Package deploy checks deploy/: every kustomize overlay renders offline and
// decodes strictly into the Kubernetes API types, the workloads, Services,
// PodDisruptionBudgets and NetworkPolicies fit together, the single overlay's
// pod really runs as rendered, the NATS config parses under the real
// nats-server, the Prometheus rules parse and behave, and every metric the
// rules and the Grafana dashboard query is one Klaxon exports.
package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var root = filepath.Join("..", "..", "deploy")

// overlays lists every directory under deploy/k8s/overlays: a new overlay is
// tested without touching this file.
func overlays(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "k8s", "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	if len(out) < 2 {
		t.Fatalf("overlays %v: want at least single and microservices", out)
	}
	return out
}

// rendered is one overlay's objects, strictly decoded.
type rendered struct {
	Deployments     []*appsv1.Deployment
	StatefulSets    []*appsv1.StatefulSet
	Services        []*corev1.Service
	ConfigMaps      []*corev1.ConfigMap
	ServiceAccounts []*corev1.ServiceAccount
	PDBs            []*policyv1.PodDisruptionBudget
	NetworkPolicies []*networkingv1.NetworkPolicy
	ServiceMonitors []*unstructured.Unstructured
}

// workload is a Deployment or StatefulSet seen through what the checks need.
type workload struct {
	Kind, Name, Namespace string
	Selector              map[string]string
	Template              corev1.PodTemplateSpec
}

func (r *rendered) workloads() []workload {
	var out []workload
	for _, d := range r.Deployments {
		out = append(out, workload{"Deployment", d.Name, d.Namespace, d.Spec.Selector.MatchLabels, d.Spec.Template})
	}
	for _, s := range r.StatefulSets {
		out = append(out, workload{"StatefulSet", s.Name, s.Namespace, s.Spec.Selector.MatchLabels, s.Spec.Template})
	}
	return out
}

func (r *rendered) configMap(name string) *corev1.ConfigMap {
	for _, c := range r.ConfigMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// render builds an overlay the way `kubectl kustomize` does, offline (no
// remote bases, no schema download), and decodes every object strictly.
func render(t *testing.T, dir string) *rendered {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out := &rendered{}
	for _, res := range m.Resources() {
		doc, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := out.add(doc); err != nil {
			t.Errorf("%s: %v\n%s", dir, err, doc)
		}
	}
	return out
}

// strictly decodes YAML into obj as the API server's strict field
// validation does: duplicate keys, unknown fields and fields in the wrong
// case ("targetport") are errors. (encoding/json, and so
// yaml.UnmarshalStrict, would match keys case-insensitively.)
func strictly(doc []byte, obj any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := k8sjson.UnmarshalStrict(js, obj, k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// add decodes doc into its k8s.io/api type with strictly. Kinds the checks
// do not know fail too.
func (r *rendered) add(doc []byte) error {
	var meta struct{ Kind, APIVersion string }
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	into := func(obj any) error { return strictly(doc, obj) }
	switch meta.APIVersion + " " + meta.Kind {
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		r.Deployments = append(r.Deployments, o)
		return into(o)
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		r.StatefulSets = append(r.StatefulSets, o)
		return into(o)
	case "v1 Service":
		o := &corev1.Service{}
		r.Services = append(r.Services, o)
		return into(o)
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		r.ConfigMaps = append(r.ConfigMaps, o)
		return into(o)
	case "v1 ServiceAccount":
		o := &corev1.ServiceAccount{}
		r.ServiceAccounts = append(r.ServiceAccounts, o)
		return into(o)
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		r.PDBs = append(r.PDBs, o)
		return into(o)
	case "networking.k8s.io/v1 NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		r.NetworkPolicies = append(r.NetworkPolicies, o)
		return into(o)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		o, err := decodeServiceMonitor(doc)
		if err == nil {
			r.ServiceMonitors = append(r.ServiceMonitors, o)
		}
		return err
	case "v1 Secret":
		return fmt.Errorf("a Secret is rendered: secrets never live in the repository (reference them by name)")
	}
	return fmt.Errorf("unexpected object %s %s: add it to the strict decoder", meta.APIVersion, meta.Kind)
}

// fields is the schema of the ServiceMonitor fields this repository uses: a
// key maps to its sub-schema (fields, []fields for a list of objects) or to
// nil for a leaf (a scalar or a string map such as labels).
type fields map[string]any

// serviceMonitorFields: k8s.io/api has no type for monitoring.coreos.com/v1,
// so the ServiceMonitor is decoded as unstructured and checked against the
// subset of the Prometheus Operator's schema used here. Anything else (a typo
// such as `endpoint`, or a field the operator would ignore) fails.
var serviceMonitorFields = fields{
	"apiVersion": nil, "kind": nil,
	"metadata": fields{"name": nil, "namespace": nil, "labels": nil, "annotations": nil},
	"spec": fields{
		"jobLabel":          nil,
		"selector":          fields{"matchLabels": nil},
		"namespaceSelector": fields{"matchNames": nil, "any": nil},
		"endpoints": []fields{{
			"port": nil, "path": nil, "interval": nil, "scrapeTimeout": nil, "scheme": nil, "honorLabels": nil,
		}},
	},
}

func decodeServiceMonitor(doc []byte) (*unstructured.Unstructured, error) {
	obj := map[string]any{}
	if err := strictly(doc, &obj); err != nil {
		return nil, err
	}
	if err := checkFields("", obj, serviceMonitorFields); err != nil {
		return nil, fmt.Errorf("ServiceMonitor: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	eps, _, _ := unstructured.NestedSlice(obj, "spec", "endpoints")
	sel, _, _ := unstructured.NestedStringMap(obj, "spec", "selector", "matchLabels")
	if u.GetName() == "" || len(eps) == 0 || len(sel) == 0 {
		return nil, fmt.Errorf("ServiceMonitor needs metadata.name, spec.selector.matchLabels and spec.endpoints")
	}
	return u, nil
}

func checkFields(path string, v any, schema any) error {
	switch s := schema.(type) {
	case nil:
		return nil
	case fields:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", path, v)
		}
		for k, sub := range m {
			want, known := s[k]
			if !known {
				return fmt.Errorf("unknown field %s.%s", path, k)
			}
			if err := checkFields(path+"."+k, sub, want); err != nil {
				return err
			}
		}
	case []fields:
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want a list, got %T", path, v)
		}
		for i, e := range l {
			if err := checkFields(fmt.Sprintf("%s[%d]", path, i), e, s[0]); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestStrictDecodingRejects proves the decoder used on the overlays fails on
// what it must: unknown fields in typed and unstructured objects, plaintext
// Secrets and kinds nobody checks.
func TestStrictDecodingRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown Deployment field":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"field in the wrong case":     "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1, targetport: http}]}\n",
		"duplicate field":             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"ServiceMonitor typo":         "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {selector: {matchLabels: {a: b}}, endpoints: [{port: http, intervall: 30s}]}\n",
		"ServiceMonitor no endpoints": "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {selector: {matchLabels: {a: b}}}\n",
		"Secret":                      "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {token: hunter2}\n",
		"unknown kind":                "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\n",
	} {
		if err := (&rendered{}).add([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	ok := "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {selector: {matchLabels: {a: b}}, endpoints: [{port: http, path: /metrics}]}\n"
	if err := (&rendered{}).add([]byte(ok)); err != nil {
		t.Errorf("valid ServiceMonitor: %v", err)
	}
}
