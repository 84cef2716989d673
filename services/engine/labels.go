package engine

import (
	"encoding/binary"
	"encoding/json"
	"iter"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// Labels is an immutable set of name/value pairs (an alert's labels or
// annotations, a group's labels) packed into one string: for each pair in
// name order, uvarint(len(name)) name uvarint(len(value)) value.
//
// Why not map[string]string: an engine holding an alert storm keeps every
// active alert's labels and annotations, and a Go map of four labels costs
// about 300 bytes of buckets and headers besides its strings; packed, the
// same set is one allocation of its bytes. Matching and templating want
// maps, so LabelSet and Map build one when needed (transient garbage, not
// held memory). Prometheus' own stringlabels build packs labels the same way.
type Labels struct{ s string }

// LabelsFromMap packs m. A nil or empty map gives the empty set.
func LabelsFromMap(m map[string]string) Labels {
	if len(m) == 0 {
		return Labels{}
	}
	var arr [16]string // alerts rarely carry more labels: no allocation to sort them
	names := arr[:0]
	size := 0
	for k, v := range m {
		names = append(names, k)
		size += uvarintLen(len(k)) + len(k) + uvarintLen(len(v)) + len(v)
	}
	slices.Sort(names)
	var b strings.Builder
	b.Grow(size)
	for _, k := range names {
		writePair(&b, k, m[k])
	}
	return Labels{s: b.String()}
}

// uvarintLen is the length of n's uvarint encoding: the packed string is
// allocated at its exact size (a Builder's String keeps any slack, and
// every held alert has two of these).
func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

func writePair(b *strings.Builder, k, v string) {
	var n [binary.MaxVarintLen64]byte
	b.Write(binary.AppendUvarint(n[:0], uint64(len(k))))
	b.WriteString(k)
	b.Write(binary.AppendUvarint(n[:0], uint64(len(v))))
	b.WriteString(v)
}

// All yields the pairs in name order.
func (l Labels) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		s := l.s
		for len(s) > 0 {
			var k, v string
			k, s = next(s)
			v, s = next(s)
			if !yield(k, v) {
				return
			}
		}
	}
}

// next splits the length-prefixed string at the head of s from the rest
// (binary.Uvarint, but on a string: no conversion to copy it into).
func next(s string) (string, string) {
	var n uint64
	var shift uint
	i := 0
	for i < len(s) {
		c := s[i]
		i++
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
		shift += 7
	}
	s = s[i:]
	return s[:n], s[n:]
}

// Before is model.LabelSet.Before on the packed labels (the order of a
// notification's alerts after job and instance, as in Alertmanager), without
// building two maps per comparison: fewer labels first, then, over the
// names of both in order, the set lacking a name the other has comes first
// (it is the other's), else the lower value. FuzzLabelsBefore compares.
func (l Labels) Before(o Labels) bool {
	if n, m := l.count(), o.count(); n != m {
		return n < m
	}
	a, b := l.s, o.s
	for len(a) > 0 && len(b) > 0 {
		var ka, va, kb, vb string
		ka, a = next(a)
		va, a = next(a)
		kb, b = next(b)
		vb, b = next(b)
		switch {
		case ka < kb: // ka is not in o
			return false
		case kb < ka: // kb is not in l
			return true
		case va != vb:
			return va < vb
		}
	}
	return false
}

// count is the number of pairs.
func (l Labels) count() int {
	n := 0
	for range l.All() {
		n++
	}
	return n
}

// Get returns the value of name, "" if absent (Prometheus' rule: an
// absent label and an empty one are the same).
func (l Labels) Get(name string) string {
	for k, v := range l.All() {
		if k == name {
			return v
		}
	}
	return ""
}

// Map returns a new map of the pairs (never nil: JSON APIs show an empty
// set as {}).
func (l Labels) Map() map[string]string {
	m := make(map[string]string, 8)
	for k, v := range l.All() {
		m[k] = v
	}
	return m
}

// Fingerprint is model.LabelSet.Fingerprint of the pairs, hashed straight
// from the packed string: the pairs are already in name order, so there is
// no map to build and no names to sort (FuzzLabels compares). The route
// cache looks every routed alert up by it.
func (l Labels) Fingerprint() model.Fingerprint {
	// Prometheus' hash: 64-bit FNV-1a over name, 0xff, value, 0xff per pair.
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime64
		}
		h ^= uint64(model.SeparatorByte)
		h *= prime64
	}
	for k, v := range l.All() {
		add(k)
		add(v)
	}
	return model.Fingerprint(h)
}

// LabelSet returns a new model.LabelSet of the pairs, for matchers and
// route trees.
func (l Labels) LabelSet() model.LabelSet {
	ls := make(model.LabelSet, 8)
	for k, v := range l.All() {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// Filter returns the pairs whose name keep accepts.
func (l Labels) Filter(keep func(name string) bool) Labels {
	size := 0
	for k, v := range l.All() {
		if keep(k) {
			size += uvarintLen(len(k)) + len(k) + uvarintLen(len(v)) + len(v)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for k, v := range l.All() {
		if keep(k) {
			writePair(&b, k, v)
		}
	}
	return Labels{s: b.String()}
}

// String is the Alertmanager form, {a="1", b="2"}.
func (l Labels) String() string { return string(l.appendString(nil)) }

// appendString appends what String returns: model.LabelSet's rendering
// (names in order, ", " between pairs, values quoted), without building
// the map; the names are packed in order already. A group's id and key are
// rendered on every write of the group.
func (l Labels) appendString(b []byte) []byte {
	b = append(b, '{')
	first := true
	for k, v := range l.All() {
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, k...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, v)
	}
	return append(b, '}')
}

// MarshalJSON writes a JSON object with the names in order, the same
// bytes encoding/json writes for the equivalent map[string]string, so the
// stored format of groups did not change with the representation.
func (l Labels) MarshalJSON() ([]byte, error) {
	return l.appendJSON(make([]byte, 0, len(l.s)+16)), nil
}

// appendJSON appends what MarshalJSON returns.
func (l Labels) appendJSON(b []byte) []byte {
	b = append(b, '{')
	first := true
	for k, v := range l.All() {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	return append(b, '}')
}

// UnmarshalJSON reads a JSON object of strings (or null).
func (l *Labels) UnmarshalJSON(data []byte) error {
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*l = LabelsFromMap(m)
	return nil
}

// appendJSONString quotes s as encoding/json does. Label text is nearly
// always printable ASCII, quoted here with the only escapes encoding/json
// uses for it (quote, backslash, and <, >, & as \u00XX); control characters
// and anything beyond ASCII (invalid UTF-8, U+2028...) go through
// encoding/json itself. FuzzAppendJSONString compares.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	// Every group id and key holds quotes: this is the common path.
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '<':
			b = append(b, `\u003c`...)
		case '>':
			b = append(b, `\u003e`...)
		case '&':
			b = append(b, `\u0026`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
