package logql

import (
	"errors"
	"strings"
	"testing"
)

// Valid LogQL, most of it from Loki's documentation (query/log_queries,
// query/metric_queries, query/template_functions).
var valid = []struct {
	expr string
	kind Kind
}{
	// Stream selectors and line filters.
	{`{app="mysql",name="mysql-backup"}`, LogQuery},
	{`{name=~"mysql.+"}`, LogQuery},
	{`{name!~"mysql.+", env="prod"}`, LogQuery},
	{"{name=~`mysql-\\d+`}", LogQuery},
	{`{ job = "mysql" , a != "" }`, LogQuery},
	{`{a!=""}`, LogQuery},
	{`{a!~".*"}`, LogQuery},
	{`{a="b", c=""}`, LogQuery},
	{`{job="mysql"} |= "error" != "timeout"`, LogQuery},
	{`{job="mysql"} |~ "err(or)?" !~ "time.?out"`, LogQuery},
	{`{app="foo"} |= "bar" or "baz" or "qux"`, LogQuery},
	{`{app="foo"} |> "<_> level=error <_>"`, LogQuery},
	{`{app="foo"} !> "<_> level=debug <_>"`, LogQuery},
	{`{foo="bar"} |= ip("192.168.4.5-192.168.4.20")`, LogQuery},
	{`{job="mysql"} |= ip("192.168.4.5/16")`, LogQuery},
	{`{job="mysql"} != ip("::1") or "x"`, LogQuery},
	{`{app="x"} |= "a" # a comment` + "\n" + ` |= "b"`, LogQuery},
	// Parsers and formatters.
	{`{container="query-frontend",namespace="loki-dev"} |= "metrics.go" | logfmt | duration > 10s and throughput_mb < 500`, LogQuery},
	{`{job="varlogs"} |~ "error" | json`, LogQuery},
	{`{job="loki"} | json first_server="servers[0]", ua="request.headers[\"User-Agent\"]"`, LogQuery},
	{`{job="loki"} | json status, method`, LogQuery},
	{`{job="loki"} | logfmt --strict --keep-empty`, LogQuery},
	{`{job="loki"} | logfmt --strict host, fwd_ip="fwd"`, LogQuery},
	{`{job="loki"} | regexp "(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)"`, LogQuery},
	{`{job="nginx"} | pattern "<ip> - - <_> \"<method> <uri> <_>\" <status> <size> <_> \"<agent>\" <_>"`, LogQuery},
	{"{job=\"nginx\"} | pattern `<_> <level>: <msg>`", LogQuery},
	{`{job="loki"} | unpack | line_format "{{.status_code}} {{.method}}"`, LogQuery},
	{`{job="loki"} | json | line_format "{{ .message | ToUpper }} {{ if eq .x \"y\" }}z{{ end }}"`, LogQuery},
	{`{job="loki"} | logfmt | label_format foo=bar, baz="{{.x}}-{{.y}}"`, LogQuery},
	{`{job="loki"} | decolorize`, LogQuery},
	{`{job="loki"} | logfmt | drop level, method="GET", path=~"/api.*"`, LogQuery},
	{`{job="loki"} | logfmt | keep level, method!="GET"`, LogQuery},
	{`{job="loki"} | JSON | __error__=""`, LogQuery},
	{`{job="loki"} | logfmt | level="error" or level="warn"`, LogQuery},
	{`{job="loki"} | logfmt | (duration > 1m or status_code!="200") and method="POST"`, LogQuery},
	{`{job="loki"} | logfmt | status >= 400, status < 500`, LogQuery},
	{`{job="loki"} | logfmt | status >= 400 status < 500`, LogQuery},
	{`{job="loki"} | logfmt | size > 20MB and size <= 1KiB`, LogQuery},
	{`{job="loki"} | logfmt | duration >= 1m30s | latency == 1.5s | x = -1 | y != +2.5`, LogQuery},
	{`{job="loki"} | logfmt | addr = ip("2001:db8::1-2001:db8::8") | remote != ip("10.0.0.0/8")`, LogQuery},
	{`{job="loki"} | logfmt | bytes > 1KB | duration > 1s`, LogQuery},
	{`({app="x"} |= "y")`, LogQuery},
	// Range aggregations.
	{`count_over_time({job="mysql"}[5m])`, MetricQuery},
	{`rate({job="mysql"} |= "error" != "timeout" [5m])`, MetricQuery},
	{`bytes_rate({job="mysql"}[5m])`, MetricQuery},
	{`bytes_over_time({job="mysql"}[1h])`, MetricQuery},
	{`absent_over_time({job="mysql"}[1h])`, MetricQuery},
	{`rate({app="foo"}[1m] offset 1h)`, MetricQuery},
	{`count_over_time({app="foo"} |= "x" [5m] offset -5m)`, MetricQuery},
	{`count_over_time({app="x"}[5m] | json | level="error")`, MetricQuery},
	{`count_over_time({app="x"}[5m] offset 1m | json)`, MetricQuery},
	{`rate(({app="x"})[5m])`, MetricQuery},
	{`avg(rate(({job="nginx"} |= "GET")[10s])) by (region)`, MetricQuery},
	{`rate(({app="x"}[5m]))`, MetricQuery},
	{`rate({app="x"} | logfmt | unwrap v [5m])`, MetricQuery},
	{`rate_counter({app="x"} | logfmt | unwrap requests [5m])`, MetricQuery},
	{`quantile_over_time(0.99, {cluster="ops-tools1",container="ingress-nginx"} | json | __error__ = "" | unwrap request_time [1m]) by (path)`, MetricQuery},
	{`sum by (org_id) (sum_over_time({cluster="ops-tools1",container="loki-dev"} |= "metrics.go" | logfmt | unwrap bytes_processed [1m]))`, MetricQuery},
	{`avg_over_time({app="x"} | logfmt | unwrap duration(latency) | __error__="" [5m]) by (host)`, MetricQuery},
	{`max_over_time({app="x"} | logfmt | unwrap duration_seconds(d) [5m]) without (pod)`, MetricQuery},
	{`sum_over_time({app="x"} | logfmt | unwrap bytes(size) [5m])`, MetricQuery},
	{`min_over_time({app="x"} | unwrap v [5m])`, MetricQuery},
	{`stddev_over_time({app="x"} | logfmt | unwrap v [5m]) by (a)`, MetricQuery},
	{`stdvar_over_time({app="x"} | logfmt | unwrap v [5m])`, MetricQuery},
	{`first_over_time({app="x"} | logfmt | unwrap v [5m]) by (pod)`, MetricQuery},
	{`last_over_time({app="x"} | logfmt | unwrap v [5m] offset 1h)`, MetricQuery},
	{`sum_over_time({app="x"}[5m] | logfmt | unwrap v)`, MetricQuery},
	{`sum_over_time({app="x"}[5m] | unwrap v | v > 1)`, MetricQuery},
	{`sum_over_time(({app="x"})[5m] | unwrap v)`, MetricQuery},
	{`sum_over_time(({app="x"} | json | unwrap v)[5m])`, MetricQuery},
	{`count_over_time({a="b"} # comment` + "\n" + ` [5m])`, MetricQuery},
	// Vector aggregations.
	{`sum(count_over_time({job="mysql"}[5m])) by (level)`, MetricQuery},
	{`sum by (host) (rate({job="mysql"} |= "error" != "timeout" | json | duration > 10s [1m]))`, MetricQuery},
	{`topk(10,sum(rate({region="us-east1"}[5m])) by (name))`, MetricQuery},
	{`bottomk by (a) (3, rate({a="b"}[5m]))`, MetricQuery},
	{`approx_topk(5, sum by (a) (rate({a="b"}[5m])))`, MetricQuery},
	{`sort(sum by (a) (rate({a="b"}[5m])))`, MetricQuery},
	{`sort_desc(rate({a="b"}[5m]))`, MetricQuery},
	{`count without (instance) (rate({a="b"}[5m]))`, MetricQuery},
	{`avg(rate({a="b"}[5m])) by ()`, MetricQuery},
	{`min(rate({a="b"}[5m])) + max(rate({a="b"}[5m])) - stddev(rate({a="b"}[5m])) * stdvar(rate({a="b"}[5m]))`, MetricQuery},
	{`SUM BY (x) (RATE({a="b"}[5m]))`, MetricQuery},
	{`sum by(x)(rate({a="b"}[5m]))`, MetricQuery},
	// Binary operations, literals, vector, label_replace.
	{`sum(rate({app="a"}[5m])) / sum(rate({app="b"}[5m])) * 100 > 5`, MetricQuery},
	{`sum by (app) (rate({app=~".+"}[5m])) > bool 10`, MetricQuery},
	{`sum(rate({app="a"}[5m])) or vector(0)`, MetricQuery},
	{`sum(rate({a="b"}[5m])) by (x) / on (x) group_left (y) sum(rate({a="c"}[5m])) by (x, y)`, MetricQuery},
	{`sum(rate({a="b"}[5m])) by (x) * ignoring (z) group_right sum(rate({a="c"}[5m])) by (x)`, MetricQuery},
	{`rate({a="b"}[5m]) and on () rate({a="c"}[5m]) unless rate({a="d"}[5m])`, MetricQuery},
	{`(sum(rate({a="b"}[5m])) + 1) % 2 ^ 3 ^ 2 <= -1`, MetricQuery},
	{`rate({a="b"}[5m]) --1`, MetricQuery},
	{`1 + 1`, MetricQuery},
	{`-1.5e3`, MetricQuery},
	{`vector(1)`, MetricQuery},
	{`label_replace(rate({job="api"} |= "err" [1m]), "foo", "$1", "service", "(.*):.*")`, MetricQuery},
	{`count_over_time({a="b"}[5m]) == 0 or absent_over_time({a="b"}[5m])`, MetricQuery},
}

// Invalid LogQL with the message Parse gives.
var invalid = []struct{ expr, msg string }{
	{``, `1:1: unexpected end of expression, expected a stream selector {...}, an aggregation or a number`},
	{`{app="foo"`, `1:11: unexpected end of expression in the stream selector, expected "," or "}"`},
	{`{app="foo",}`, `1:12: unexpected "}" in the stream selector, expected a label name`},
	{`{app=foo}`, `1:6: unexpected "foo" in the stream selector, expected a quoted string`},
	{`{app=="foo"}`, `1:5: unexpected "==" in the stream selector, expected =, !=, =~ or !~`},
	{`{app=~"("}`, "1:7: invalid regular expression \"(\": error parsing regexp: missing closing ): `^(?s:()$`"},
	{`{}`, `1:1: queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will`},
	{`{a=~".*", b=""}`, `1:1: queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will`},
	{`{json="x"}`, `1:2: unexpected keyword "json" in the stream selector, expected a label name (LogQL reserves it)`},
	{`{a='b'}`, "1:4: unexpected character \"'\": strings are quoted with \" or `"},
	{`{a="b\q"}`, `1:4: invalid string "b\q": bad escape sequence`},
	{`{a="b}`, `1:4: string not terminated`},
	{`{app="foo"} |`, `1:14: unexpected end of expression after "|", expected a parser, a label filter or a formatter`},
	{`{app="foo"} | foo`, `1:18: unexpected end of expression after label foo, expected a comparison (=, !=, =~, !~, ==, >, >=, <, <=)`},
	{`{app="foo"} | rate`, `1:19: unexpected end of expression after label rate, expected a comparison (=, !=, =~, !~, ==, >, >=, <, <=)`},
	{`{app="foo"} |= 5`, `1:16: unexpected "5" after line filter "|=", expected a quoted string or ip("...")`},
	{`{app="foo"} |~ "("`, "1:16: invalid regular expression \"(\": error parsing regexp: missing closing ): `(`"},
	{`{app="foo"} |= "a" or`, `1:22: unexpected end of expression after line filter "|=", expected a quoted string or ip("...")`},
	{`{app="foo"} |= ip("300.1.1.1")`, `1:19: invalid ip("300.1.1.1"): want an address, a CIDR (10.0.0.0/8) or a range (10.0.0.1-10.0.0.9)`},
	{`{app="foo"} | regexp "(\\d+)"`, `1:22: regexp "(\\d+)": at least one named capture (?P<name>...) must be supplied`},
	{`{app="foo"} | pattern "<a><b>"`, `1:23: pattern "<a><b>": consecutive captures are not allowed`},
	{`{app="foo"} | pattern "<a> <a>"`, `1:23: pattern "<a> <a>": duplicate capture <a>`},
	{`{app="foo"} | pattern "<_> foo"`, `1:23: pattern "<_> foo": at least one named capture such as <name> is required`},
	{`{app="foo"} | line_format "{{.a"`, `1:27: invalid template string "{{.a": template: template:1: unclosed action`},
	{`{app="foo"} | label_format a=1`, `1:30: unexpected "1" in label_format, expected a label name or a template in quotes`},
	{`{app="foo"} | json | x > "a"`, `1:24: > compares numbers, durations or byte sizes; strings take =, !=, =~ or !~`},
	{`{app="foo"} | json | x == "a"`, `1:24: == compares numbers, durations or byte sizes; strings take =, !=, =~ or !~`},
	{`{app="foo"} | json | x =~ 5`, `1:27: unexpected "5" after =~, expected a regular expression in quotes`},
	{`{app="foo"} | json | (x > 1`, `1:28: unexpected end of expression to close the label filter's parenthesis, expected ")"`},
	{`{app="foo"} | logfmt --bogus`, `1:22: unknown flag --bogus (logfmt takes --strict and --keep-empty)`},
	{`{app="foo"} | json [5m]`, `1:20: unexpected range [5m] after a log query: a range belongs inside a range aggregation such as count_over_time(...)`},
	{`{app="foo"} | unwrap x`, `1:13: unwrap is only allowed inside a range aggregation such as sum_over_time(...)`},
	{`{app="foo"} | json | drop`, `1:26: unexpected end of expression in drop, expected a label name`},
	{`{app="foo"} | by`, `1:15: unexpected "by" after "|", expected a parser (json, logfmt, regexp, pattern, unpack), a label filter, line_format, label_format, drop, keep or decolorize`},
	{`{app="foo"} | json | pattern="x"`, `1:29: unexpected "=" after pattern, expected a pattern in quotes`},
	{`rate({app="foo"})`, `1:17: unexpected ")" in rate(...), expected a range such as [5m] after the log query`},
	{`rate({app="foo"}[5x])`, `1:18: range [5x]: unknown unit "x" in duration "5x"`},
	{`rate({app="foo"}[5m:1m])`, `1:18: range [5m:1m]: unknown unit "m:" in duration "5m:1m"`},
	{`rate({app="foo"}[5m)`, `1:17: missing closing ']' in duration`},
	{`rate({app="foo"}[5m] offset 5)`, `1:29: unexpected "5" after offset, expected a duration such as 1h`},
	{`rate({app="foo"}[5m] | unwrap x | json)`, `1:35: unexpected "json" after unwrap: only label filters may follow an unwrap`},
	{`sum_over_time({app="foo"}[5m])`, `1:1: invalid aggregation sum_over_time without unwrap (add | unwrap <label> before the range)`},
	{`rate_counter({a="b"}[5m])`, `1:1: invalid aggregation rate_counter without unwrap (add | unwrap <label> before the range)`},
	{`count_over_time({app="foo"} | unwrap x [5m])`, `1:1: invalid aggregation count_over_time with unwrap`},
	{`bytes_rate({app="foo"} | unwrap x [5m])`, `1:1: invalid aggregation bytes_rate with unwrap`},
	{`quantile_over_time({a="b"} | unwrap x [5m])`, `1:20: parameter required for operation quantile_over_time, e.g. quantile_over_time(0.99, ...)`},
	{`rate(0.5, {a="b"}[5m])`, `1:6: parameter 0.5 not supported for operation rate`},
	{`rate({a="b"}[5m]) by (x)`, `1:19: grouping not allowed for rate aggregation`},
	{`sum_over_time({a="b"} | unwrap x [5m]) by (x)`, `1:40: grouping not allowed for sum_over_time aggregation`},
	{`rate(({a="b"} |= "x") [5m] | unwrap v)`, `1:28: unexpected "|" to close rate(, expected ")"`},
	{`topk(sum(rate({a="b"}[5m])))`, `1:1: parameter required for operation topk, e.g. topk(5, ...)`},
	{`topk(1.5, rate({a="b"}[5m]))`, `1:6: invalid parameter topk(1.5,: want an integer`},
	{`topk(0, rate({a="b"}[5m]))`, `1:6: invalid parameter (must be greater than 0) topk(0`},
	{`sum(5, rate({a="b"}[5m]))`, `1:5: unsupported parameter for operation sum(5,`},
	{`approx_topk(5, rate({a="b"}[5m])) by (a)`, `1:1: grouping not allowed for approx_topk aggregation`},
	{`sort by (a) (rate({a="b"}[5m]))`, `1:1: sort and sort_desc do not allow grouping by labels`},
	{`sum({a="b"})`, `1:5: sum takes a metric query, not a log query (e.g. wrap it in count_over_time(...[5m]))`},
	{`sum(rate({a="b"}[5m])) by (x`, `1:29: unexpected end of expression in by, expected ")"`},
	{`sum(rate({a="b"}[5m])) by (x,)`, `1:30: unexpected ")" in by, expected a label name`},
	{`{a="b"} > 1`, `1:9: the left side of ">" is a log query; binary operations take metric queries (e.g. wrap it in count_over_time(...[5m]))`},
	{`1 + {a="b"}`, `1:3: the right side of "+" is a log query; binary operations take metric queries (e.g. wrap it in count_over_time(...[5m]))`},
	{`rate({a="b"}[5m]) and 1`, `1:19: unexpected literal for right leg of logical/set binary operation (and)`},
	{`rate({a="b"}[5m]) +`, `1:20: unexpected end of expression, expected a stream selector {...}, an aggregation or a number`},
	{`rate({a="b"}[5m]) + on (x) group_left (`, `1:40: unexpected end of expression in group_left/group_right, expected a label name`},
	{`rate({a="b"}[5m]) rate({a="b"}[5m])`, `1:19: unexpected "rate" after the expression`},
	{`histogram_quantile(0.9, rate({a="b"}[5m]))`, `1:1: unexpected identifier "histogram_quantile": not a LogQL function or expression`},
	{`up`, `1:1: unexpected identifier "up": not a LogQL function or expression`},
	{`label_replace(rate({a="b"}[5m]), "dst", "$1", "src", "(")`, "1:54: invalid regex in label_replace: error parsing regexp: missing closing ): `^(?:()$`"},
	{`label_replace({a="b"}, "dst", "$1", "src", "(.*)")`, `1:15: label_replace takes a metric query, not a log query`},
	{`vector(x)`, `1:8: unexpected "x" in vector(...), expected a number`},
	{`0x1F + 1`, `1:1: unable to parse literal 0x1F as a float`},
	{"count_over_time({a=\"b\"}\n  | json\n  | x >> 1 [5m])", `3:8: unexpected ">" after x >, expected a string, number, duration or byte size`},
	{strings.Repeat(" ", 5120), `1:1: input size too long (5120 > 5120)`},
}

func TestParseValid(t *testing.T) {
	for _, tc := range valid {
		t.Run(tc.expr, func(t *testing.T) {
			kind, err := Parse(tc.expr)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if kind != tc.kind {
				t.Errorf("kind %d, want %d", kind, tc.kind)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range invalid {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := Parse(tc.expr)
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if err.Error() != tc.msg {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.msg)
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(tc.expr) {
				t.Errorf("error %#v has no position inside the expression", err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		expr    string
		skipped bool
		msg     string
	}{
		{`sum(rate({app="x"} |= "error" [5m])) > 10`, false, ""},
		{`vector(1)`, true, ""}, // no stream selector: also PromQL
		{`up == 0`, true, ""},
		{`rate(http_requests_total[5m]) > 1`, true, ""},
		{`sum by (job) (up{job="api"}) < 1`, true, ""},
		{`histogram_quantile(0.99, sum by (le) (rate({__name__="x_bucket"}[5m])))`, true, ""},
		{`max_over_time(up{job='x'}[1h:5m])`, true, ""},
		{`{app="x"} |= "error"`, false, `1:1: a ruler expression must be a metric query (e.g. wrap it in rate(...[5m]))`},
		{"\n  {app=\"x\"} | json", false, `2:3: a ruler expression must be a metric query (e.g. wrap it in rate(...[5m]))`},
		{`sum(rate({app="x"}[5m]) by (x)`, false, `1:25: grouping not allowed for rate aggregation`},
		{`rat({app="x"}[5m])`, false, `1:1: unexpected identifier "rat": not a LogQL function or expression`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			skipped, err := Check(tc.expr)
			if skipped != tc.skipped {
				t.Errorf("skipped %v, want %v", skipped, tc.skipped)
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.msg {
				t.Errorf("error %q, want %q", got, tc.msg)
			}
		})
	}
}

func TestExprPosition(t *testing.T) {
	_, err := Parse(`{a="b"} |= "x" | bad`)
	var pe interface{ ExprPosition() (int, string) }
	if !errors.As(err, &pe) {
		t.Fatalf("%v has no ExprPosition", err)
	}
	if off, msg := pe.ExprPosition(); off != 20 || !strings.HasPrefix(msg, "unexpected end of expression after label bad") {
		t.Errorf("ExprPosition() = %d, %q", off, msg)
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range valid {
		f.Add(tc.expr)
	}
	for _, tc := range invalid[:len(invalid)-1] {
		f.Add(tc.expr)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		kind, err := Parse(expr)
		if err == nil {
			if kind != LogQuery && kind != MetricQuery {
				t.Fatalf("accepted %q with kind %d", expr, kind)
			}
			return
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(expr) || pe.Line < 1 || pe.Col < 1 {
			t.Fatalf("%q: error without a position: %#v", expr, err)
		}
		_, _ = Check(expr)
	})
}
