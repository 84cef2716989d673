package logql

import (
	"regexp"
	"strconv"
)

// The parser is recursive descent over the token slice, one method per rule
// of Loki's expr.y (named alike), with binary operators by precedence
// climbing. It stops at the first error: a method panics with a *Error and
// parse recovers it.

// node is what the parser keeps of a parsed expression.
type node struct {
	kind    Kind
	pos     int  // offset of its first token
	literal bool // a number, or arithmetic on numbers only (Loki folds it)
}

type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) parse() (n node, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*Error)
			if !ok {
				panic(r)
			}
			err = e
		}
	}()
	n = p.expr(0)
	if t := p.peek(); t.kind != tEOF {
		p.fail(t, "unexpected %s after the expression", t.describe())
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) fail(t token, format string, args ...any) {
	panic(errAt(p.src, t.pos, format, args...))
}

func (p *parser) failAt(pos int, format string, args ...any) {
	panic(errAt(p.src, pos, format, args...))
}

// is reports whether t is the operator or word w (keywords and function
// names compare in lower case).
func is(t token, w string) bool {
	return (t.kind == tOp || t.kind == tKeyword || t.kind == tFunc) && t.val == w
}

func (p *parser) accept(w string) bool {
	if is(p.peek(), w) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expect(w, context string) token {
	t := p.next()
	if !is(t, w) {
		p.fail(t, "unexpected %s %s, expected %q", t.describe(), context, w)
	}
	return t
}

func (p *parser) expectKind(k tokKind, what, context string) token {
	t := p.next()
	if t.kind != k {
		if t.kind == tKeyword && k == tIdent {
			p.fail(t, "unexpected keyword %s %s, expected %s (LogQL reserves it)", t.describe(), context, what)
		}
		p.fail(t, "unexpected %s %s, expected %s", t.describe(), context, what)
	}
	return t
}

// Binary operators by precedence, as in expr.y: or < and, unless <
// comparisons < + - < * / % < ^ (right-associative).
var binPrec = map[string]int{
	"or": 1, "and": 2, "unless": 2,
	"==": 3, "!=": 3, ">": 3, ">=": 3, "<": 3, "<=": 3,
	"+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "^": 6,
}

func (p *parser) expr(minPrec int) node {
	left := p.unary()
	for {
		op := p.peek()
		prec, ok := binPrec[op.val]
		if !ok || (op.kind != tOp && op.kind != tKeyword) || prec < minPrec {
			return left
		}
		p.next()
		if left.kind == LogQuery {
			p.fail(op, "the left side of %q is a log query; binary operations take metric queries (e.g. wrap it in count_over_time(...[5m]))", op.val)
		}
		p.binOpModifier()
		next := prec + 1
		if op.val == "^" {
			next = prec
		}
		right := p.expr(next)
		for _, leg := range []struct {
			n    node
			side string
		}{{left, "left"}, {right, "right"}} {
			if leg.n.kind == LogQuery {
				p.fail(op, "the %s side of %q is a log query; binary operations take metric queries (e.g. wrap it in count_over_time(...[5m]))", leg.side, op.val)
			}
			if leg.n.literal && (op.val == "or" || op.val == "and" || op.val == "unless") {
				p.fail(op, "unexpected literal for %s leg of logical/set binary operation (%s)", leg.side, op.val)
			}
		}
		left = node{kind: MetricQuery, pos: left.pos, literal: left.literal && right.literal}
	}
}

// binOpModifier: [bool] [on|ignoring (labels) [group_left|group_right [(labels)]]].
func (p *parser) binOpModifier() {
	p.accept("bool")
	if !p.accept("on") && !p.accept("ignoring") {
		return
	}
	p.labels("in on/ignoring")
	if p.accept("group_left") || p.accept("group_right") {
		if is(p.peek(), "(") {
			p.labels("in group_left/group_right")
		}
	}
}

// labels parses "(a, b)" or "()" and returns how many labels it has.
func (p *parser) labels(context string) int {
	p.expect("(", context)
	if p.accept(")") {
		return 0
	}
	n := 0
	for {
		p.expectKind(tIdent, "a label name", context)
		n++
		if !p.accept(",") {
			break
		}
	}
	p.expect(")", context)
	return n
}

// grouping: by|without (labels). It returns -1 when there is none, else
// the number of labels.
func (p *parser) grouping() int {
	t := p.peek()
	if !is(t, "by") && !is(t, "without") {
		return -1
	}
	p.next()
	return p.labels("in " + t.val)
}

func (p *parser) unary() node {
	t := p.peek()
	switch {
	case t.kind == tNumber:
		p.next()
		p.float(t, "literal")
		return node{kind: MetricQuery, pos: t.pos, literal: true}
	case is(t, "+") || is(t, "-"):
		p.next()
		n := p.expectKind(tNumber, "a number", "after "+strconv.Quote(t.val))
		p.float(n, "literal")
		return node{kind: MetricQuery, pos: t.pos, literal: true}
	case is(t, "("):
		p.next()
		n := p.expr(0)
		p.expect(")", "to close the parenthesis")
		if r := p.peek(); r.kind == tRange {
			p.fail(r, "unexpected %s: a range belongs inside a range aggregation such as count_over_time(...)", r.describe())
		}
		n.pos = t.pos
		return n
	case is(t, "{"):
		p.selector()
		if p.pipeline() {
			p.fail(p.peek(), "unwrap is only allowed inside a range aggregation such as sum_over_time(...)")
		}
		if r := p.peek(); r.kind == tRange {
			p.fail(r, "unexpected %s after a log query: a range belongs inside a range aggregation such as count_over_time(...)", r.describe())
		}
		return node{kind: LogQuery, pos: t.pos}
	case t.kind == tFunc && rangeOps[t.val]:
		return p.rangeAggregationExpr()
	case t.kind == tFunc && vectorOps[t.val]:
		return p.vectorAggregationExpr()
	case is(t, "vector"):
		p.next()
		p.expect("(", "after vector")
		p.float(p.expectKind(tNumber, "a number", "in vector(...)"), "vector")
		p.expect(")", "to close vector(")
		return node{kind: MetricQuery, pos: t.pos}
	case is(t, "label_replace"):
		return p.labelReplaceExpr()
	case t.kind == tIdent || t.kind == tFunc:
		p.fail(t, "unexpected identifier %s: not a LogQL function or expression", t.describe())
	}
	p.fail(t, "unexpected %s, expected a stream selector {...}, an aggregation or a number", t.describe())
	return node{}
}

func (p *parser) float(t token, what string) float64 {
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil {
		p.fail(t, "unable to parse %s %s as a float", what, t.text)
	}
	return f
}

// rangeAggregationExpr: op([φ,] logRange) [grouping], with ast.go's checks.
func (p *parser) rangeAggregationExpr() node {
	op := p.next()
	p.expect("(", "after "+op.val)
	if t := p.peek(); t.kind == tNumber && is(p.peekAt(1), ",") {
		if op.val != "quantile_over_time" {
			p.fail(t, "parameter %s not supported for operation %s", t.text, op.val)
		}
		p.float(t, "parameter of "+op.val)
		p.next()
		p.next()
	} else if op.val == "quantile_over_time" {
		p.fail(t, "parameter required for operation quantile_over_time, e.g. quantile_over_time(0.99, ...)")
	}
	unwrapped := p.logRange(op.val)
	p.expect(")", "to close "+op.val+"(")
	if g := p.peek(); p.grouping() >= 0 {
		switch op.val {
		case "avg_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time",
			"max_over_time", "min_over_time", "first_over_time", "last_over_time":
		default:
			p.fail(g, "grouping not allowed for %s aggregation", op.val)
		}
	}
	switch {
	case unwrapped && (op.val == "count_over_time" || op.val == "bytes_over_time" || op.val == "bytes_rate"):
		p.fail(op, "invalid aggregation %s with unwrap", op.val)
	case !unwrapped && op.val != "count_over_time" && op.val != "bytes_over_time" &&
		op.val != "bytes_rate" && op.val != "rate" && op.val != "absent_over_time":
		p.fail(op, "invalid aggregation %s without unwrap (add | unwrap <label> before the range)", op.val)
	}
	return node{kind: MetricQuery, pos: op.pos}
}

// logRange is a range aggregation's argument: a selector, a pipeline, an
// unwrap and a [range] with an optional offset, in any of the orders
// expr.y's logRangeExpr lists, or such a thing in parentheses. It reports
// whether there is an unwrap.
func (p *parser) logRange(op string) bool {
	if !is(p.peek(), "(") {
		unwrapped, ranged := p.selectorRange()
		if !ranged {
			t := p.peek()
			p.fail(t, "unexpected %s in %s(...), expected a range such as [5m] after the log query", t.describe(), op)
		}
		return unwrapped
	}
	p.next()
	if is(p.peek(), "(") {
		unwrapped := p.logRange(op)
		p.expect(")", "to close the parenthesis")
		return unwrapped
	}
	if !is(p.peek(), "{") {
		t := p.peek()
		p.fail(t, "unexpected %s in %s(...), expected a stream selector {...}", t.describe(), op)
	}
	before := p.i
	unwrapped, ranged := p.selectorRange()
	bare := p.i == before+countSelector(p.toks[before:])
	p.expect(")", "to close the parenthesis")
	if ranged {
		return unwrapped
	}
	if t := p.next(); t.kind != tRange {
		p.fail(t, "unexpected %s in %s(...), expected a range such as [5m]", t.describe(), op)
	}
	p.offset()
	if bare && p.peekUnwrap() {
		unwrapped = p.unwrapExpr()
	}
	return unwrapped
}

// countSelector is the number of tokens of the selector toks starts with.
func countSelector(toks []token) int {
	for i, t := range toks {
		if is(t, "}") || t.kind == tEOF {
			return i + 1
		}
	}
	return len(toks)
}

// selectorRange parses selector [pipeline] [unwrap] [range [offset]], or
// selector range [offset] [pipeline] [unwrap].
func (p *parser) selectorRange() (unwrapped, ranged bool) {
	p.selector()
	piped := p.pipelineLen() > 0
	if p.peekUnwrap() {
		unwrapped = p.unwrapExpr()
	}
	if p.peek().kind != tRange {
		return unwrapped, false
	}
	p.next()
	p.offset()
	if !piped && !unwrapped {
		p.pipelineLen()
		if p.peekUnwrap() {
			unwrapped = p.unwrapExpr()
		}
	}
	return unwrapped, true
}

func (p *parser) offset() {
	if p.accept("offset") {
		p.expectKind(tDuration, "a duration such as 1h", "after offset")
	}
}

func (p *parser) peekUnwrap() bool { return is(p.peek(), "|") && is(p.peekAt(1), "unwrap") }

// unwrapExpr: | unwrap label, | unwrap bytes|duration|duration_seconds(label),
// then only label filters.
func (p *parser) unwrapExpr() bool {
	p.next()
	p.next()
	if t := p.peek(); t.kind == tFunc && convOps[t.val] {
		p.next()
		p.expect("(", "after "+t.val)
		p.expectKind(tIdent, "a label name", "in "+t.val+"(...)")
		p.expect(")", "to close "+t.val+"(")
	} else {
		p.expectKind(tIdent, "a label name or bytes(...)/duration(...)/duration_seconds(...)", "after unwrap")
	}
	for is(p.peek(), "|") {
		p.next()
		if t := p.peek(); t.kind != tIdent && !is(t, "(") {
			p.fail(t, "unexpected %s after unwrap: only label filters may follow an unwrap", t.describe())
		}
		p.labelFilter()
	}
	return true
}

// vectorAggregationExpr: op [grouping] ([k,] metricExpr) [grouping].
func (p *parser) vectorAggregationExpr() node {
	op := p.next()
	grouping := p.grouping()
	p.expect("(", "after "+op.val)
	var param *token
	if t := p.peek(); t.kind == tNumber && is(p.peekAt(1), ",") {
		param = &t
		p.next()
		p.next()
	}
	if inner := p.expr(0); inner.kind == LogQuery {
		p.failAt(inner.pos, "%s takes a metric query, not a log query (e.g. wrap it in count_over_time(...[5m]))", op.val)
	}
	p.expect(")", "to close "+op.val+"(")
	if grouping < 0 {
		grouping = p.grouping()
	}
	switch op.val {
	case "topk", "bottomk", "approx_topk":
		if param == nil {
			p.fail(op, "parameter required for operation %s, e.g. %s(5, ...)", op.val, op.val)
		}
		k, err := strconv.Atoi(param.text)
		if err != nil {
			p.fail(*param, "invalid parameter %s(%s,: want an integer", op.val, param.text)
		}
		if k <= 0 {
			p.fail(*param, "invalid parameter (must be greater than 0) %s(%s", op.val, param.text)
		}
		if op.val == "approx_topk" && grouping >= 0 {
			p.fail(op, "grouping not allowed for approx_topk aggregation")
		}
	case "sort", "sort_desc":
		if grouping > 0 {
			p.fail(op, "sort and sort_desc do not allow grouping by labels")
		}
		fallthrough
	default:
		if param != nil {
			p.fail(*param, "unsupported parameter for operation %s(%s,", op.val, param.text)
		}
	}
	return node{kind: MetricQuery, pos: op.pos}
}

// labelReplaceExpr: label_replace(metricExpr, "dst", "replacement", "src", "regex").
func (p *parser) labelReplaceExpr() node {
	op := p.next()
	p.expect("(", "after label_replace")
	if inner := p.expr(0); inner.kind == LogQuery {
		p.failAt(inner.pos, "label_replace takes a metric query, not a log query")
	}
	var re token
	for i := 0; i < 4; i++ {
		p.expect(",", "in label_replace(...)")
		re = p.expectKind(tString, "a string", "in label_replace(...)")
	}
	p.expect(")", "to close label_replace(")
	if _, err := regexp.Compile("^(?:" + re.val + ")$"); err != nil {
		p.fail(re, "invalid regex in label_replace: %v", err)
	}
	return node{kind: MetricQuery, pos: op.pos}
}
