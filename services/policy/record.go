package policy

import (
	"encoding/binary"
	"sort"
)

// record is what one KV entry holds: the window and the key's label values
// (needed to build the derived alert after a restart).
type record struct {
	Window
	Labels map[string]string
	// Pending is a derived alert (a marshalled Envelope) decided with this
	// state and not yet known to be published: written with the state,
	// published, then cleared; whoever updates the key next publishes it
	// first (its id makes a second copy a JetStream duplicate). Without it a
	// publish that failed after the state was written was lost: the
	// redelivered occurrence was a duplicate, so the derived alert never
	// fired (and later resolved, unseen).
	Pending []byte
}

func (r *record) marshal() []byte {
	wb, _ := r.Window.MarshalBinary()
	buf := binary.AppendUvarint(nil, uint64(len(wb)))
	buf = append(buf, wb...)
	keys := make([]string, 0, len(r.Labels))
	for k := range r.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	for _, k := range keys {
		for _, s := range []string{k, r.Labels[k]} {
			buf = binary.AppendUvarint(buf, uint64(len(s)))
			buf = append(buf, s...)
		}
	}
	// Pending is a trailing optional section: a record without one is byte
	// for byte what earlier versions wrote and read.
	if len(r.Pending) > 0 {
		buf = binary.AppendUvarint(buf, uint64(len(r.Pending)))
		buf = append(buf, r.Pending...)
	}
	return buf
}

func (r *record) unmarshal(b []byte) error {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return errCorrupt
	}
	if err := r.Window.UnmarshalBinary(b[k : k+int(n)]); err != nil {
		return err
	}
	b = b[k+int(n):]
	cnt, k := binary.Uvarint(b)
	if k <= 0 || cnt > 1024 {
		return errCorrupt
	}
	b = b[k:]
	r.Labels = make(map[string]string, cnt)
	str := func() (string, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return "", false
		}
		s := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return s, true
	}
	for i := uint64(0); i < cnt; i++ {
		key, ok1 := str()
		val, ok2 := str()
		if !ok1 || !ok2 {
			return errCorrupt
		}
		r.Labels[key] = val
	}
	r.Pending = nil
	if len(b) != 0 {
		l, k := binary.Uvarint(b)
		if k <= 0 || l == 0 || uint64(len(b)-k) != l {
			return errCorrupt
		}
		r.Pending = append([]byte(nil), b[k:]...)
	}
	return nil
}
