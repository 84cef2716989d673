package logql

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"text/template/parse"
)

// The log side of the grammar: stream selectors and pipeline stages (line
// filters, parsers, formatters, drop/keep, label filters), with the checks
// Loki makes when it builds the stage (regular expressions compile, regexp
// and pattern name a capture, templates parse, ip(...) is an address).

// selector: {matcher, ...}; at least one matcher must not match the empty
// string (Loki: "queries require at least one regexp or equality matcher
// that does not have an empty-compatible value").
func (p *parser) selector() {
	open := p.expect("{", "")
	real := false
	if !is(p.peek(), "}") {
		for {
			if !p.matcher("in the stream selector") {
				real = true
			}
			if !p.accept(",") {
				break
			}
		}
	}
	if t := p.next(); !is(t, "}") {
		p.fail(t, "unexpected %s in the stream selector, expected \",\" or \"}\"", t.describe())
	}
	if !real {
		p.fail(open, "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will")
	}
}

// matcher: label (=|!=|=~|!~) "value". It reports whether the matcher
// matches the empty string.
func (p *parser) matcher(context string) (matchesEmpty bool) {
	p.expectKind(tIdent, "a label name", context)
	op := p.next()
	if !is(op, "=") && !is(op, "!=") && !is(op, "=~") && !is(op, "!~") {
		p.fail(op, "unexpected %s %s, expected =, !=, =~ or !~", op.describe(), context)
	}
	v := p.expectKind(tString, "a quoted string", context)
	switch op.val {
	case "=":
		return v.val == ""
	case "!=":
		return v.val != ""
	}
	re, err := regexp.Compile("^(?s:" + v.val + ")$")
	if err != nil {
		p.fail(v, "invalid regular expression %s: %v", v.text, err)
	}
	return re.MatchString("") == (op.val == "=~")
}

// pipeline parses stages until none follows, or an unwrap; it reports
// whether it stopped at an unwrap.
func (p *parser) pipeline() bool {
	p.pipelineLen()
	return p.peekUnwrap()
}

var lineFilterOps = map[string]bool{"|=": true, "!=": true, "|~": true, "!~": true, "|>": true, "!>": true}

// pipelineLen parses pipeline stages and returns how many it parsed.
func (p *parser) pipelineLen() int {
	n := 0
	for {
		t := p.peek()
		switch {
		case t.kind == tOp && lineFilterOps[t.val]:
			p.lineFilter()
		case is(t, "|") && !is(p.peekAt(1), "unwrap"):
			p.next()
			p.stage(t)
		default:
			return n
		}
		n++
	}
}

// lineFilter: op "str" [or "str"...], where a string may be ip("...");
// as in expr.y's orFilter, an ip(...) after "or" ends the chain.
func (p *parser) lineFilter() {
	op := p.next()
	p.lineFilterValue(op.val)
	for p.accept("or") {
		if p.lineFilterValue(op.val) {
			return
		}
	}
}

func (p *parser) lineFilterValue(op string) bool {
	if t := p.peek(); is(t, "ip") {
		p.next()
		p.expect("(", "after ip")
		p.ipPattern(p.expectKind(tString, "an IP, range or CIDR in quotes", "in ip(...)"))
		p.expect(")", "to close ip(")
		return true
	}
	v := p.expectKind(tString, "a quoted string or ip(\"...\")", "after line filter "+strconv.Quote(op))
	if op == "|~" || op == "!~" {
		if _, err := regexp.Compile(v.val); err != nil {
			p.fail(v, "invalid regular expression %s: %v", v.text, err)
		}
	}
	return false
}

// ipPattern checks an ip("...") argument: an address, a CIDR or a range.
func (p *parser) ipPattern(t token) {
	s := strings.TrimSpace(t.val)
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(from))
		b, err2 := netip.ParseAddr(strings.TrimSpace(to))
		if err1 == nil && err2 == nil && a.Is4() == b.Is4() && !b.Less(a) {
			return
		}
	}
	p.fail(t, "invalid ip(%s): want an address, a CIDR (10.0.0.0/8) or a range (10.0.0.1-10.0.0.9)", t.text)
}

// stage is what follows a "|": a parser, a formatter, drop/keep, or a
// label filter.
func (p *parser) stage(pipe token) {
	t := p.peek()
	switch {
	case is(t, "json"):
		p.next()
		if p.peek().kind == tIdent {
			p.extractions()
		}
	case is(t, "logfmt"):
		p.next()
		for p.peek().kind == tFlag {
			p.next()
		}
		if p.peek().kind == tIdent {
			p.extractions()
		}
	case is(t, "unpack") || is(t, "decolorize"):
		p.next()
	case is(t, "regexp"):
		p.next()
		p.regexpParser(p.expectKind(tString, "a regular expression in quotes", "after regexp"))
	case is(t, "pattern"):
		p.next()
		p.patternParser(p.expectKind(tString, "a pattern in quotes", "after pattern"))
	case is(t, "line_format"):
		p.next()
		p.tmpl(p.expectKind(tString, "a template in quotes", "after line_format"))
	case is(t, "label_format"):
		p.next()
		for {
			p.expectKind(tIdent, "a label name", "in label_format")
			p.expect("=", "in label_format")
			if v := p.next(); v.kind == tString {
				p.tmpl(v)
			} else if v.kind != tIdent {
				p.fail(v, "unexpected %s in label_format, expected a label name or a template in quotes", v.describe())
			}
			if !p.accept(",") {
				break
			}
		}
	case is(t, "drop") || is(t, "keep"):
		p.next()
		for {
			if p.peek().kind == tIdent && !isMatchOp(p.peekAt(1)) {
				p.next()
			} else {
				p.matcher("in " + t.val)
			}
			if !p.accept(",") {
				break
			}
		}
	case t.kind == tIdent || is(t, "("):
		p.labelFilter()
	case t.kind == tFunc || t.kind == tKeyword:
		p.fail(t, "unexpected %s after \"|\", expected a parser (json, logfmt, regexp, pattern, unpack), a label filter, line_format, label_format, drop, keep or decolorize", t.describe())
	default:
		p.fail(t, "unexpected %s after %q, expected a parser, a label filter or a formatter", t.describe(), pipe.val)
	}
}

func isMatchOp(t token) bool {
	return is(t, "=") || is(t, "!=") || is(t, "=~") || is(t, "!~")
}

// extractions: label or label="expression", comma separated (json, logfmt).
func (p *parser) extractions() {
	for {
		p.expectKind(tIdent, "a label name", "in the parser's parameters")
		if p.accept("=") {
			p.expectKind(tString, "an expression in quotes", "in the parser's parameters")
		}
		if !p.accept(",") {
			return
		}
	}
}

// labelFilter: terms joined by and, or, "," or nothing, with parentheses.
func (p *parser) labelFilter() {
	for {
		if t := p.peek(); is(t, "(") {
			p.next()
			p.labelFilter()
			p.expect(")", "to close the label filter's parenthesis")
		} else {
			p.labelFilterTerm()
		}
		t := p.peek()
		switch {
		case is(t, "and") || is(t, "or") || is(t, ","):
			p.next()
		case t.kind == tIdent || is(t, "("):
		default:
			return
		}
	}
}

// labelFilterTerm: label op value, where the value is a string (=, !=, =~,
// !~), ip("...") (=, !=), or a number, duration or byte size (==, =, !=,
// >, >=, <, <=).
func (p *parser) labelFilterTerm() {
	name := p.expectKind(tIdent, "a label name", "in the label filter")
	op := p.next()
	switch op.val {
	case "=", "!=", "=~", "!~", "==", ">", ">=", "<", "<=":
	default:
		p.fail(op, "unexpected %s after label %s, expected a comparison (=, !=, =~, !~, ==, >, >=, <, <=)", op.describe(), name.text)
	}
	v := p.peek()
	switch {
	case v.kind == tString:
		if op.val != "=" && op.val != "!=" && op.val != "=~" && op.val != "!~" {
			p.fail(op, "%s compares numbers, durations or byte sizes; strings take =, !=, =~ or !~", op.val)
		}
		p.i--
		p.i--
		p.matcher("in the label filter")
	case is(v, "ip"):
		if op.val != "=" && op.val != "!=" {
			p.fail(op, "ip(...) takes = or !=")
		}
		p.next()
		p.expect("(", "after ip")
		p.ipPattern(p.expectKind(tString, "an IP, range or CIDR in quotes", "in ip(...)"))
		p.expect(")", "to close ip(")
	case op.val == "=~" || op.val == "!~":
		p.fail(v, "unexpected %s after %s, expected a regular expression in quotes", v.describe(), op.val)
	case v.kind == tDuration || v.kind == tBytes:
		p.next()
	case v.kind == tNumber:
		p.next()
		p.float(v, "number")
	case is(v, "+") || is(v, "-"):
		p.next()
		p.float(p.expectKind(tNumber, "a number", "after "+strconv.Quote(v.val)), "number")
	default:
		p.fail(v, "unexpected %s after %s %s, expected a string, number, duration or byte size", v.describe(), name.text, op.val)
	}
}

// regexpParser: | regexp "..." compiles (RE2) and names at least one group
// with a valid label name.
func (p *parser) regexpParser(t token) {
	re, err := regexp.Compile(t.val)
	if err != nil {
		p.fail(t, "invalid regular expression %s: %v", t.text, err)
	}
	named := false
	for _, n := range re.SubexpNames() {
		if n != "" {
			named = true
		}
	}
	if !named {
		p.fail(t, "regexp %s: at least one named capture (?P<name>...) must be supplied", t.text)
	}
}

// patternParser: | pattern "<ip> - <_> <status>" has at least one named
// capture, no two captures side by side, and no name twice.
func (p *parser) patternParser(t token) {
	s, names, prevCapture := t.val, map[string]bool{}, false
	for s != "" {
		open := strings.IndexByte(s, '<')
		if open < 0 {
			break
		}
		if open > 0 {
			prevCapture = false // literal text between
		}
		end := strings.IndexByte(s[open:], '>')
		name := ""
		if end > 0 {
			name = s[open+1 : open+end]
		}
		if end < 0 || !isIdent(name) {
			prevCapture = false // a literal "<"
			s = s[open+1:]
			continue
		}
		if prevCapture && open == 0 {
			p.fail(t, "pattern %s: consecutive captures are not allowed", t.text)
		}
		if name != "_" {
			if names[name] {
				p.fail(t, "pattern %s: duplicate capture <%s>", t.text, name)
			}
			names[name] = true
		}
		prevCapture = true
		s = s[open+end+1:]
	}
	if len(names) == 0 {
		p.fail(t, "pattern %s: at least one named capture such as <name> is required", t.text)
	}
}

func isIdent(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// tmpl checks a line_format or label_format template's syntax (functions
// are Loki's and are not checked).
func (p *parser) tmpl(t token) {
	tree := parse.New("template")
	tree.Mode = parse.SkipFuncCheck
	if _, err := tree.Parse(t.val, "{{", "}}", map[string]*parse.Tree{}); err != nil {
		p.fail(t, "invalid template %s: %v", t.describe(), err)
	}
}
