package logql

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// The lexer follows Loki's (pkg/logql/syntax/lex.go, built on text/scanner):
//
//   - words are case-insensitive; the words in keywords are reserved and are
//     never label names; the words in funcWords are function names only when
//     a "(" follows (or "by"/"without" and then "(" — `sum by (x) (...)`),
//     so `| bytes > 1KB` and `| unwrap duration` keep their labels;
//   - a number directly followed by unit letters is a duration (5m, 1m30s,
//     1.5s) or else a byte size (20MB, 1KiB); "-5m" is a negative duration;
//   - "[...]" is scanned whole as a range and must be a Prometheus duration;
//   - strings are Go strings in double quotes or backticks;
//   - "#" starts a comment to the end of the line, and so do Go's "//" and
//     "/* */" (text/scanner skips them).

type tokKind int

const (
	tEOF      tokKind = iota
	tIdent            // label name or other identifier
	tKeyword          // reserved word; val is lower case
	tFunc             // function name followed by "("; val is lower case
	tString           // val is the unquoted value
	tNumber           // text as written
	tDuration         // 5m, 1m30s, -5m
	tBytes            // 20MB
	tRange            // [5m]; val is the duration
	tFlag             // --strict, --keep-empty
	tOp               // punctuation and operators; val is the operator
)

type token struct {
	kind tokKind
	pos  int    // byte offset in the expression
	text string // source text
	val  string
}

// describe names t for error messages.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		if len(t.text) > 40 {
			return "string " + t.text[:37] + "..."
		}
		return "string " + t.text
	case tRange:
		return "range " + t.text
	}
	return strconv.Quote(t.text)
}

var keywords = map[string]bool{
	"by": true, "without": true, "bool": true, "offset": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "or": true, "and": true, "unless": true,
	"json": true, "regexp": true, "logfmt": true, "unpack": true, "pattern": true,
	"label_format": true, "line_format": true, "ip": true, "decolorize": true,
	"drop": true, "keep": true, "unwrap": true, "label_replace": true, "variants": true, "of": true,
}

var rangeOps = map[string]bool{
	"rate": true, "rate_counter": true, "count_over_time": true, "bytes_rate": true,
	"bytes_over_time": true, "avg_over_time": true, "sum_over_time": true, "min_over_time": true,
	"max_over_time": true, "stdvar_over_time": true, "stddev_over_time": true,
	"quantile_over_time": true, "first_over_time": true, "last_over_time": true, "absent_over_time": true,
}

var vectorOps = map[string]bool{
	"sum": true, "avg": true, "max": true, "min": true, "count": true, "stddev": true,
	"stdvar": true, "bottomk": true, "topk": true, "sort": true, "sort_desc": true, "approx_topk": true,
}

var convOps = map[string]bool{"bytes": true, "duration": true, "duration_seconds": true}

func isFuncWord(w string) bool {
	return rangeOps[w] || vectorOps[w] || convOps[w] || w == "vector" || w == "label_replace" || w == "ip"
}

var twoCharOps = []string{"|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<="}

const oneCharOps = "|=,.{}()+-*/%^><"

// lex splits src into tokens, ending with a tEOF token. On an error it
// returns the tokens before it.
func lex(src string) ([]token, *Error) {
	var toks []token
	i := 0
	for {
		i = skipSpaceAndComments(src, i)
		if i >= len(src) {
			return append(toks, token{kind: tEOF, pos: len(src)}), nil
		}
		t, err := lexOne(src, i)
		if err != nil {
			return toks, err
		}
		toks = append(toks, t)
		i = t.pos + len(t.text)
	}
}

func skipSpaceAndComments(src string, i int) int {
	for i < len(src) {
		switch {
		case src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r':
			i++
		case src[i] == '#' || strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return len(src)
			}
			i += 2 + end + 2
		default:
			return i
		}
	}
	return i
}

func lexOne(src string, i int) (token, *Error) {
	r, size := utf8.DecodeRuneInString(src[i:])
	rest := src[i:]
	switch {
	case r == utf8.RuneError && size == 1:
		return token{}, errAt(src, i, "invalid UTF-8 encoding")
	case r == '_' || unicode.IsLetter(r):
		j := i + size
		for j < len(src) {
			r, n := utf8.DecodeRuneInString(src[j:])
			if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				break
			}
			j += n
		}
		t := token{kind: tIdent, pos: i, text: src[i:j], val: strings.ToLower(src[i:j])}
		switch {
		case isFuncWord(t.val) && followedByCall(src[j:]):
			t.kind = tFunc
		case keywords[t.val]:
			t.kind = tKeyword
		default:
			t.val = t.text
		}
		return t, nil
	case r >= '0' && r <= '9' || r == '.' && len(rest) > 1 && rest[1] >= '0' && rest[1] <= '9':
		return lexNumber(src, i), nil
	case r == '"' || r == '`':
		return lexString(src, i)
	case r == '[':
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return token{}, errAt(src, i, "missing closing ']' in duration")
		}
		body := rest[1:end]
		if _, err := model.ParseDuration(body); err != nil {
			return token{}, errAt(src, i+1, "range [%s]: %v", body, err)
		}
		return token{kind: tRange, pos: i, text: rest[:end+1], val: body}, nil
	case r == '-' && strings.HasPrefix(rest, "--"):
		j := 2
		for j < len(rest) && (rest[j] == '-' || unicode.IsLetter(rune(rest[j]))) {
			j++
		}
		if f := rest[:j]; f == "--strict" || f == "--keep-empty" {
			return token{kind: tFlag, pos: i, text: f, val: f}, nil
		} else if j > 2 && rest[2] != '-' {
			return token{}, errAt(src, i, "unknown flag %s (logfmt takes --strict and --keep-empty)", f)
		}
	case r == '-':
		if n, ok := unitSuffix(rest[1:], isDurationRune, parseDuration, "-"); ok {
			return token{kind: tDuration, pos: i, text: rest[:1+n]}, nil
		}
	}
	for _, op := range twoCharOps {
		if strings.HasPrefix(rest, op) {
			return token{kind: tOp, pos: i, text: op, val: op}, nil
		}
	}
	if strings.ContainsRune(oneCharOps, r) {
		return token{kind: tOp, pos: i, text: rest[:1], val: rest[:1]}, nil
	}
	if r == '\'' {
		return token{}, errAt(src, i, "unexpected character \"'\": strings are quoted with \" or `")
	}
	return token{}, errAt(src, i, "unexpected character %q", r)
}

// followedByCall reports whether s (what follows a word) starts a call:
// "(" or "by (" / "without (" after optional spaces, as Loki's isFunction.
func followedByCall(s string) bool {
	s = strings.TrimLeft(s, " \t\r\n")
	if strings.HasPrefix(s, "(") {
		return true
	}
	for _, g := range []string{"by", "without"} {
		if len(s) >= len(g) && strings.EqualFold(s[:len(g)], g) {
			return strings.HasPrefix(strings.TrimLeft(s[len(g):], " \t\r\n"), "(")
		}
	}
	return false
}

// lexNumber scans a Go number (as text/scanner does, leniently: strconv
// judges it where its value is used), then tries a duration or byte-size
// suffix the way Loki's tryScanDuration and tryScanBytes do.
func lexNumber(src string, i int) token {
	j := i
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' || c == '_' }
	if strings.HasPrefix(src[j:], "0x") || strings.HasPrefix(src[j:], "0X") {
		j += 2
		for j < len(src) && (isDigit(src[j]) || strings.IndexByte("abcdefABCDEF.pP", src[j]) >= 0 ||
			(src[j] == '+' || src[j] == '-') && (src[j-1] == 'p' || src[j-1] == 'P')) {
			j++
		}
	} else {
		if strings.HasPrefix(src[j:], "0b") || strings.HasPrefix(src[j:], "0o") {
			j += 2
		}
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		if j < len(src) && src[j] == '.' {
			j++
			for j < len(src) && isDigit(src[j]) {
				j++
			}
		}
		if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
			k := j + 1
			if k < len(src) && (src[k] == '+' || src[k] == '-') {
				k++
			}
			if k < len(src) && src[k] >= '0' && src[k] <= '9' {
				for j = k; j < len(src) && isDigit(src[j]); j++ {
				}
			}
		}
	}
	num := src[i:j]
	if n, ok := unitSuffix(src[j:], isDurationRune, parseDuration, num); ok {
		return token{kind: tDuration, pos: i, text: src[i : j+n]}
	}
	if n, ok := unitSuffix(src[j:], isBytesRune, parseBytes, num); ok {
		return token{kind: tBytes, pos: i, text: src[i : j+n]}
	}
	return token{kind: tNumber, pos: i, text: num, val: num}
}

// unitSuffix takes the digits, '.' and unit runes at the start of s and
// reports how many bytes it took when prefix+them parses.
func unitSuffix(s string, unit func(rune) bool, parse func(string) error, prefix string) (int, bool) {
	n := 0
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		if !unicode.IsNumber(r) && !unit(r) && r != '.' {
			break
		}
		n += size
	}
	if n == 0 || parse(prefix+s[:n]) != nil {
		return 0, false
	}
	return n, true
}

func isDurationRune(r rune) bool { return strings.ContainsRune("nuµmshdwy", r) }
func isBytesRune(r rune) bool    { return strings.ContainsRune("BikKMGTP", r) }

// parseDuration accepts Prometheus durations (1d, 1m30s) and, as Loki does,
// Go's (1.5s, 300us).
func parseDuration(s string) error {
	if _, err := model.ParseDuration(s); err == nil {
		return nil
	}
	_, err := time.ParseDuration(s)
	return err
}

// bytesUnits are the units go-humanize's ParseBytes knows (lower case),
// restricted to the letters Loki's lexer lets through.
var bytesUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1e6, "mb": 1e6, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1e9, "gb": 1e9, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1e12, "tb": 1e12, "ti": 1 << 40, "tib": 1 << 40,
	"p": 1e15, "pb": 1e15, "pi": 1 << 50, "pib": 1 << 50,
}

// parseBytes mirrors go-humanize's ParseBytes for what can reach it here.
func parseBytes(s string) error {
	n := 0
	for n < len(s) && (s[n] >= '0' && s[n] <= '9' || s[n] == '.') {
		n++
	}
	f, err := strconv.ParseFloat(s[:n], 64)
	if err != nil {
		return err
	}
	m, ok := bytesUnits[strings.ToLower(s[n:])]
	if !ok || f*m >= math.MaxUint64 {
		return strconv.ErrRange
	}
	return nil
}

func lexString(src string, i int) (token, *Error) {
	quote := src[i]
	j := i + 1
	for j < len(src) && src[j] != quote {
		if quote == '"' && src[j] == '\n' {
			break
		}
		if quote == '"' && src[j] == '\\' {
			j++
		}
		j++
	}
	if j >= len(src) || src[j] != quote {
		return token{}, errAt(src, i, "string not terminated")
	}
	text := src[i : j+1]
	if !utf8.ValidString(text) {
		return token{}, errAt(src, i, "invalid UTF-8 in string")
	}
	val, err := strconv.Unquote(text)
	if err != nil {
		return token{}, errAt(src, i, "invalid string %s: bad escape sequence", text)
	}
	return token{kind: tString, pos: i, text: text, val: val}, nil
}
