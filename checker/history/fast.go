package history

import (
	"bytes"
)

// The fast path reads a line the way almost every writer writes one: a
// flat object of known fields whose strings have no escapes and whose
// numbers are plain non-negative integers. It builds no tree: it walks
// the bytes once. It never refuses anything: when a line holds what it does
// not read exactly as decode would (an escape, a float, a negative number,
// an unknown field, a field of the wrong type, a required field missing,
// bad syntax), it says so and decode reads the line again, so that every
// event and every refusal is decode's. FuzzFastAgreesWithDecode checks the
// agreement.

// fast decodes line into e, or reports false and leaves e for decode.
func (d *decoder) fast(line []byte, e *Event) bool {
	*e = Event{Index: -1}
	var have seen
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i = skipSpace(line, i+1)
	for {
		k0, k1, ok := plainString(line, i)
		if !ok {
			return false
		}
		i = skipSpace(line, k1+1)
		if i >= len(line) || line[i] != ':' {
			return false
		}
		i = skipSpace(line, i+1)
		end, ok := d.fastField(line[k0:k1], line, i, e, &have)
		if !ok {
			return false
		}
		i = skipSpace(line, end)
		if i >= len(line) {
			return false
		}
		if line[i] == '}' {
			break
		}
		if line[i] != ',' {
			return false
		}
		i = skipSpace(line, i+1)
	}
	if skipSpace(line, i+1) != len(line) {
		return false
	}
	_, err := have.complete(e)
	return err == nil
}

// fastField reads the value at line[i] into key's field and returns where
// it ends.
func (d *decoder) fastField(key, line []byte, i int, e *Event, have *seen) (int, bool) {
	switch string(key) {
	case "index":
		n, end, ok := plainInt(line, i)
		e.Index = int(n)
		return end, ok
	case "time":
		have.time = true
		n, end, ok := plainInt(line, i)
		e.Time = n
		return end, ok
	case "process":
		have.process = true
		if s0, s1, ok := plainString(line, i); ok {
			e.Process = NemesisProcess
			return s1 + 1, string(line[s0:s1]) == "nemesis"
		}
		n, end, ok := plainInt(line, i)
		e.Process = Process(n)
		return end, ok
	case "seq":
		n, end, ok := plainInt(line, i)
		e.Seq = uint64(n)
		return end, ok
	case "value":
		return d.fastRaw(line, i, e)
	case "final":
		switch {
		case bytes.HasPrefix(line[i:], []byte("true")):
			e.Final = true
			return i + 4, true
		case bytes.HasPrefix(line[i:], []byte("false")):
			return i + 5, true
		}
		return i, false
	}
	s0, s1, ok := plainString(line, i)
	if !ok {
		return i, false
	}
	s := line[s0:s1]
	switch string(key) {
	case "type":
		have.typ = true
		e.Type = d.typeOf(s)
	case "f":
		have.f = true
		e.F = d.word(s)
	case "key":
		e.Key = d.str(s)
	case "client":
		e.Client = d.str(s)
	case "node":
		e.Node = d.word(s)
	case "error":
		e.Error = d.word(s)
	case "detail":
		e.Detail = string(s)
	default: // targets (a list) and fields decode refuses
		return i, false
	}
	return s1 + 1, true
}

// fastRaw keeps a value's JSON text as decode does: a plain string, a
// plain integer or null as written; anything else is decode's.
func (d *decoder) fastRaw(line []byte, i int, e *Event) (int, bool) {
	end := i
	if _, s1, ok := plainString(line, i); ok {
		end = s1 + 1
	} else if bytes.HasPrefix(line[i:], []byte("null")) {
		end = i + 4
	} else if _, j, ok := plainInt(line, i); ok {
		end = j
	} else {
		return i, false
	}
	if cap(d.arena)-len(d.arena) < end-i {
		d.arena = make([]byte, 0, max(64<<10, end-i))
	}
	start := len(d.arena)
	d.arena = append(d.arena, line[i:end]...)
	e.Value = d.arena[start:len(d.arena):len(d.arena)]
	return end, true
}

// typeOf reads a type: one of the four without a lookup, anything else
// (refused later by complete) through str.
func (d *decoder) typeOf(b []byte) string {
	switch string(b) {
	case Invoke:
		return Invoke
	case OK:
		return OK
	case Fail:
		return Fail
	case Info:
		return Info
	}
	return d.str(b)
}

// word is str for the fields of a small vocabulary (operations, nodes,
// errors): a few recent words compared in turn cost less than hashing.
func (d *decoder) word(b []byte) string {
	for _, w := range d.words {
		if w == string(b) {
			return w
		}
	}
	w := d.str(b)
	d.words[d.nextWord%len(d.words)] = w
	d.nextWord++
	return w
}

// skipSpace skips JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// plainString finds the string that opens at b[i] and returns its
// contents' bounds (b[s1] is the closing quote); false for anything but a
// string without escapes and control characters.
func plainString(b []byte, i int) (s0, s1 int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ { // one pass: the strings are short
		switch c := b[j]; {
		case c == '"':
			return i + 1, j, true
		case c < 0x20 || c == '\\':
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// plainInt reads a non-negative integer without leading zeros, sign,
// fraction or exponent, short enough never to overflow, and returns it and
// where it ends.
func plainInt(b []byte, i int) (n int64, end int, ok bool) {
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		n = n*10 + int64(b[j]-'0')
		j++
	}
	switch {
	case j == i, j-i > 18, b[i] == '0' && j-i > 1:
		return 0, i, false
	case j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E'):
		return 0, i, false
	}
	return n, j, true
}
