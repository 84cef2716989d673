package e2etest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// node is a CloudFormation template read through yaml.Node, so short-form
// tags (!Ref, !Sub, !GetAtt, !If…) parse instead of failing a typed decode.
type node struct{ *yaml.Node }

func (n node) get(key string) node {
	if n.Node == nil || n.Kind != yaml.MappingNode {
		return node{}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return node{n.Content[i+1]}
		}
	}
	return node{}
}

func (n node) str() string {
	if n.Node == nil {
		return ""
	}
	return n.Value
}

func (n node) each(f func(key string, v node)) {
	if n.Node == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(n.Content[i].Value, node{n.Content[i+1]})
	}
}

func loadTemplate(t *testing.T) node {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "lambdas", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	return node{doc.Content[0]}
}

// prop reads a function property, falling back to Globals.Function.
func prop(tmpl, fn node, key string) node {
	if v := fn.get("Properties").get(key); v.Node != nil {
		return v
	}
	return tmpl.get("Globals").get("Function").get(key)
}

func makefileList(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `\s*:=\s*(.+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("Makefile has no %s", name)
	}
	return strings.Fields(string(m[1]))
}

func TestSAMTemplate(t *testing.T) {
	tmpl := loadTemplate(t)
	if tr := tmpl.get("Transform").str(); tr != "AWS::Serverless-2016-10-31" {
		t.Fatalf("Transform = %q", tr)
	}
	if got := makefileList(t, "FUNCTIONS"); !slices.Equal(got, functions) {
		t.Errorf("Makefile FUNCTIONS = %v, want %v", got, functions)
	}
	resources := tmpl.get("Resources")
	byCode := map[string]node{}
	resources.each(func(name string, r node) {
		if r.get("Type").str() != "AWS::Serverless::Function" {
			return
		}
		code := r.get("Properties").get("CodeUri").str()
		fn := strings.TrimSuffix(strings.TrimPrefix(code, "../../lambdas/build/sam/"), "/")
		if _, err := os.Stat(filepath.Join("..", "cmd", fn, "main.go")); err != nil {
			t.Errorf("%s: CodeUri %q is not a built function directory (lambdas/build/sam/<fn>/)", name, code)
		}
		byCode[fn] = r
	})

	// Architecture: a parameter whose values the Makefile builds.
	goarch := map[string]string{"arm64": "arm64", "x86_64": "amd64"}
	built := makefileList(t, "ARCHES")
	var allowed []string
	for _, v := range tmpl.get("Parameters").get("Architecture").get("AllowedValues").Content {
		allowed = append(allowed, v.Value)
		if !slices.Contains(built, goarch[v.Value]) {
			t.Errorf("Architecture %s is allowed but `make lambdas` does not build GOARCH %q", v.Value, goarch[v.Value])
		}
	}
	if len(allowed) == 0 {
		t.Error("no Architecture parameter with AllowedValues")
	}

	for _, fn := range functions {
		r, ok := byCode[fn]
		if !ok {
			t.Errorf("function %s is built but not in the template", fn)
			continue
		}
		if h := prop(tmpl, r, "Handler").str(); h != "bootstrap" {
			t.Errorf("%s: Handler %q", fn, h)
		}
		if rt := prop(tmpl, r, "Runtime").str(); rt != "provided.al2023" {
			t.Errorf("%s: Runtime %q", fn, rt)
		}
		arch := prop(tmpl, r, "Architectures")
		if arch.Node == nil || len(arch.Content) != 1 || arch.Content[0].Tag != "!Ref" || arch.Content[0].Value != "Architecture" {
			t.Errorf("%s: Architectures must be [!Ref Architecture]", fn)
		}
	}

	if ev := byCode["deadman"].get("Properties").get("Events"); !hasEventType(ev, "Schedule") {
		t.Error("deadman has no Schedule event")
	}
	if ev := byCode["cloudtrail-alerter"].get("Properties").get("Events"); !hasEventType(ev, "EventBridgeRule") {
		t.Error("cloudtrail-alerter has no EventBridge rule")
	}
	if a := byCode["heartbeat"].get("Properties").get("FunctionUrlConfig").get("AuthType").str(); a != "NONE" && a != "AWS_IAM" {
		t.Errorf("heartbeat FunctionUrlConfig.AuthType = %q", a)
	}
	subscribed := map[string]bool{}
	var table node
	resources.each(func(name string, r node) {
		switch r.get("Type").str() {
		case "AWS::SNS::Subscription":
			subscribed[r.get("Properties").get("Endpoint").str()] = true
		case "AWS::DynamoDB::Table":
			table = r
		}
	})
	for _, want := range []string{"CloudTrailAlerterFunction.Arn", "SnsRelayFunction.Arn"} {
		if !subscribed[want] {
			t.Errorf("no SNS subscription for %s", want)
		}
	}
	p := table.get("Properties")
	if ttl := p.get("TimeToLiveSpecification"); ttl.get("AttributeName").str() != alerting.AttrExpiresAt || ttl.get("Enabled").str() != "true" {
		t.Errorf("table TTL must be enabled on %s", alerting.AttrExpiresAt)
	}
	if k := p.get("KeySchema"); len(k.Content) != 1 || (node{k.Content[0]}).get("AttributeName").str() != alerting.AttrSource {
		t.Errorf("table key must be %s", alerting.AttrSource)
	}

	checkRefs(t, tmpl)
	checkNoPlaintextSecrets(t, tmpl)
}

func hasEventType(events node, typ string) bool {
	found := false
	events.each(func(_ string, e node) { found = found || e.get("Type").str() == typ })
	return found
}

// checkRefs verifies every !Ref, !GetAtt, ${…} in !Sub and condition name
// points at something the template declares.
func checkRefs(t *testing.T, tmpl node) {
	t.Helper()
	known := map[string]bool{}
	for _, sec := range []string{"Parameters", "Resources"} {
		tmpl.get(sec).each(func(k string, _ node) { known[k] = true })
	}
	conds := map[string]bool{}
	tmpl.get("Conditions").each(func(k string, _ node) { conds[k] = true })
	// SAM-generated resources referenced by the template.
	known["HeartbeatFunctionUrl"] = true
	isPseudo := func(s string) bool { return strings.HasPrefix(s, "AWS::") }
	subVar := regexp.MustCompile(`\$\{([^}!]+)\}`)
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Tag {
		case "!Ref":
			if !known[n.Value] && !isPseudo(n.Value) {
				t.Errorf("line %d: !Ref %s: not declared", n.Line, n.Value)
			}
		case "!GetAtt":
			res, _, _ := strings.Cut(n.Value, ".")
			if !known[res] {
				t.Errorf("line %d: !GetAtt %s: not declared", n.Line, n.Value)
			}
		case "!Sub":
			for _, m := range subVar.FindAllStringSubmatch(n.Value, -1) {
				name, _, _ := strings.Cut(m[1], ".")
				if !known[name] && !isPseudo(name) {
					t.Errorf("line %d: !Sub ${%s}: not declared", n.Line, m[1])
				}
			}
		case "!If":
			if len(n.Content) != 3 || !conds[n.Content[0].Value] {
				t.Errorf("line %d: !If needs a declared condition and two branches", n.Line)
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(tmpl.Node)
	tmpl.get("Resources").each(func(name string, r node) {
		if c := r.get("Condition").str(); c != "" && !conds[c] {
			t.Errorf("%s: Condition %s not declared", name, c)
		}
	})
}

// checkNoPlaintextSecrets: a parameter that names a secret must be an SSM
// parameter name, never the secret itself.
func checkNoPlaintextSecrets(t *testing.T, tmpl node) {
	t.Helper()
	secret := regexp.MustCompile(`(?i)token|key|webhook|secret|password`)
	tmpl.get("Parameters").each(func(name string, p node) {
		if !secret.MatchString(name) {
			return
		}
		if !strings.HasSuffix(name, "Parameter") || !strings.Contains(p.get("AllowedPattern").str(), "^(/") && !strings.HasPrefix(p.get("AllowedPattern").str(), "^/") {
			t.Errorf("parameter %s looks like a secret: it must be an SSM parameter name (…Parameter with an AllowedPattern of /paths)", name)
		}
	})
}
