// Package logql checks the syntax of LogQL expressions (Loki 3.x) without
// linking Loki: github.com/grafana/loki/v3 is AGPL and marked not to be used
// here. It is a hand-written recursive-descent parser that follows Loki's
// grammar (pkg/logql/syntax/expr.y and lex.go) and the checks Loki makes
// while building its AST (ast.go, parser.go): aggregations that need or
// refuse an unwrap, parameters of topk and quantile_over_time, groupings
// Loki refuses, literals on set operators, stream selectors that match
// everything, regular expressions that do not compile. It builds no AST: an
// expression is either accepted or rejected with a positioned *Error.
//
// Parse accepts what Loki's ParseExpr accepts. Check is the stricter test
// for ruler files: Loki's ruler loads a log query but every evaluation fails
// ("rule result is not a vector or scalar"), so Check rejects it, and it
// skips expressions that are Prometheus's rather than Loki's.
package logql

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is a syntax error at a position inside the expression.
type Error struct {
	Offset int // byte offset
	Line   int // 1-based
	Col    int // 1-based, in characters
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// ExprPosition returns the byte offset of the error in the expression and
// the message without its position, for callers (rulerfile) that translate
// the offset into a file position.
func (e *Error) ExprPosition() (offset int, msg string) { return e.Offset, e.Msg }

func errAt(src string, off int, format string, args ...any) *Error {
	off = min(max(off, 0), len(src))
	before := src[:off]
	line := strings.Count(before, "\n") + 1
	col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return &Error{Offset: off, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// maxInputSize is Loki's limit on the length of a query.
const maxInputSize = 5120

// Kind is what an expression yields.
type Kind int

const (
	// LogQuery is a stream selector with an optional pipeline: it yields
	// log lines.
	LogQuery Kind = iota + 1
	// MetricQuery yields samples: aggregations, binary operations, literals.
	MetricQuery
)

// Parse checks expr as Loki's ParseExpr does and reports what it yields.
func Parse(expr string) (Kind, error) {
	if len(expr) >= maxInputSize {
		return 0, errAt(expr, 0, "input size too long (%d > %d)", len(expr), maxInputSize)
	}
	toks, lerr := lex(expr)
	if lerr != nil {
		return 0, lerr
	}
	p := &parser{src: expr, toks: toks}
	n, err := p.parse()
	if err != nil {
		return 0, err
	}
	return n.kind, nil
}

// Check validates a ruler-file expression; its signature is
// rulerfile.ExprCheck. It skips (skipped=true) expressions that are clearly
// PromQL — no stream selector, a metric name before "{" (up{job="x"}), or a
// PromQL-only function — and rejects log queries, which a ruler cannot
// evaluate.
func Check(expr string) (skipped bool, err error) {
	if looksLikePromQL(expr) {
		return true, nil
	}
	kind, err := Parse(expr)
	if err != nil {
		return false, err
	}
	if kind == LogQuery {
		off := len(expr) - len(strings.TrimLeft(expr, " \t\r\n"))
		return false, errAt(expr, off, "a ruler expression must be a metric query (e.g. wrap it in rate(...[5m]))")
	}
	return false, nil
}

// promqlOnly are PromQL functions that LogQL does not have.
var promqlOnly = map[string]bool{
	"abs": true, "absent": true, "ceil": true, "changes": true, "clamp": true, "clamp_max": true,
	"clamp_min": true, "day_of_month": true, "day_of_week": true, "day_of_year": true,
	"days_in_month": true, "delta": true, "deriv": true, "exp": true, "floor": true,
	"histogram_avg": true, "histogram_count": true, "histogram_fraction": true,
	"histogram_quantile": true, "histogram_stddev": true, "histogram_stdvar": true,
	"histogram_sum": true, "holt_winters": true, "double_exponential_smoothing": true, "hour": true,
	"idelta": true, "increase": true, "irate": true, "label_join": true, "ln": true, "log2": true,
	"log10": true, "minute": true, "month": true, "predict_linear": true, "present_over_time": true,
	"resets": true, "round": true, "scalar": true, "sgn": true, "sort_by_label": true,
	"sort_by_label_desc": true, "sqrt": true, "time": true, "timestamp": true, "year": true,
	"count_values": true, "group": true, "quantile": true, "limitk": true, "limit_ratio": true,
	"mad_over_time": true, "count_values_over_time": true, "info": true,
}

// looksLikePromQL reports whether expr is clearly not LogQL. When expr does
// not lex (PromQL's 'single quotes', [1h:5m] subqueries), the tokens before
// the error decide, and the rest only counts for having a "{".
func looksLikePromQL(expr string) bool {
	toks, err := lex(expr)
	brace := err != nil && strings.Contains(expr[err.Offset:], "{")
	for i, t := range toks {
		if t.kind == tOp && t.val == "{" {
			brace = true
			if i > 0 && toks[i-1].kind == tIdent {
				return true // up{job="x"}: a metric name
			}
		}
		if t.kind == tIdent && promqlOnly[t.val] && i+1 < len(toks) && toks[i+1].kind == tOp && toks[i+1].val == "(" {
			return true
		}
	}
	return !brace
}
