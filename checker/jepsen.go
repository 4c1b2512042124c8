package checker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"

	"olympos.io/encoding/edn"

	"github.com/paxtest/paxtest/checker/history"
)

// Jepsen histories (history.edn, knossos's test data) are read as Jepsen
// and knossos mean them:
//   - the events' order is the real-time order (knossos ignores :time), so
//     an event's position is its time;
//   - :read, :write and :cas are the register's get, put and cas;
//   - :fail means the operation did not take effect, a failed cas included;
//   - values are integers (or nil); a cas's value is [old new];
//   - an independent test (jepsen.independent) wraps every value as
//     [key value]; a single-key test has one register, here the key "".
// Anything else is refused, naming the event and the field.

// jepsenF maps Jepsen's register operations onto paxtest's.
var jepsenF = map[edn.Keyword]string{"read": "get", "write": "put", "cas": "cas"}

// ReadJepsen reads a Jepsen register history (a vector of maps, or maps
// one after another) into paxtest's events, in the register workload.
func ReadJepsen(path string) ([]history.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	maps, err := decodeEDN(bufio.NewReader(f), path)
	if err != nil {
		return nil, err
	}
	j := jepsenReader{path: path, independent: -1}
	out := make([]history.Event, 0, len(maps))
	for i, m := range maps {
		e, err := j.event(i+1, m)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// decodeEDN reads either one vector of events or events one after another.
func decodeEDN(r io.Reader, path string) ([]map[edn.Keyword]any, error) {
	dec := edn.NewDecoder(r)
	var out []map[edn.Keyword]any
	for n := 1; ; n++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("history %s: event %d: not EDN: %w", path, n, err)
		}
		switch x := v.(type) {
		case []any:
			if n != 1 {
				return nil, fmt.Errorf("history %s: event %d: a vector after events (a history is one vector, or maps one after another)", path, n)
			}
			for i, item := range x {
				m, ok := item.(map[any]any)
				if !ok {
					return nil, fmt.Errorf("history %s: event %d: not a map but %T", path, i+1, item)
				}
				out = append(out, keywordMap(m))
			}
		case map[any]any:
			out = append(out, keywordMap(x))
		default:
			return nil, fmt.Errorf("history %s: event %d: not a map but %T", path, n, v)
		}
	}
}

func keywordMap(m map[any]any) map[edn.Keyword]any {
	out := make(map[edn.Keyword]any, len(m))
	for k, v := range m {
		if kw, ok := k.(edn.Keyword); ok {
			out[kw] = v
		}
	}
	return out
}

type jepsenReader struct {
	path        string
	independent int // -1 not known yet, 0 single key, 1 [key value]
	decidedAt   int
}

func (j *jepsenReader) refuse(n int, field, format string, args ...any) error {
	return &history.ParseError{Path: j.path + " (EDN; the line is the event's position)", Line: n, Field: field, Err: fmt.Errorf(format, args...)}
}

func (j *jepsenReader) event(n int, m map[edn.Keyword]any) (history.Event, error) {
	e := history.Event{Index: n - 1, Time: int64(n), Line: n}
	typ, ok := m["type"].(edn.Keyword)
	switch {
	case !ok:
		return e, j.refuse(n, ":type", "missing or not a keyword")
	case typ == "invoke" || typ == "ok" || typ == "fail" || typ == "info":
		e.Type = string(typ)
	default:
		return e, j.refuse(n, ":type", ":%s is not :invoke, :ok, :fail or :info", typ)
	}
	switch p := m["process"].(type) {
	case int64:
		if p < 0 {
			return e, j.refuse(n, ":process", "negative")
		}
		e.Process = history.Process(p)
	case edn.Keyword:
		if p != "nemesis" {
			return e, j.refuse(n, ":process", ":%s is neither a client number nor :nemesis", p)
		}
		e.Process = history.NemesisProcess
		f, _ := m["f"].(edn.Keyword)
		e.F, e.Detail = "jepsen-"+string(f), fmt.Sprint(m["value"])
		return e, nil
	default:
		return e, j.refuse(n, ":process", "missing, or neither a client number nor :nemesis")
	}
	f, ok := m["f"].(edn.Keyword)
	if !ok {
		return e, j.refuse(n, ":f", "missing or not a keyword")
	}
	if e.F, ok = jepsenF[f]; !ok {
		return e, j.refuse(n, ":f", ":%s is not a register operation (accepted: :read, :write, :cas)", f)
	}
	v := m["value"]
	if j.independent < 0 {
		j.decide(n, e.F, v)
	}
	if j.independent == 1 {
		pair, ok := v.([]any)
		if !ok || len(pair) != 2 {
			return e, j.refuse(n, ":value", "an independent test's value is [key value] (since event %d), not %v", j.decidedAt, v)
		}
		e.Key = fmt.Sprint(pair[0])
		v = pair[1]
	}
	if e.F == "get" && e.Type == history.Invoke {
		v = nil // what a read will return is no part of its invocation (knossos ignores it)
	}
	raw, err := ednJSON(v)
	if err != nil {
		return e, j.refuse(n, ":value", "%v", err)
	}
	e.Value = raw
	if e.Type == history.Fail {
		e.Error = jepsenFail
	}
	return e, nil
}

// jepsenFail marks a Jepsen :fail: the operation did not take effect (a
// refusal, as far as the checkers are concerned).
const jepsenFail = "unavailable: jepsen :fail (did not take effect)"

// decide tells a single-key history from an independent one by the first
// value that is not nil.
func (j *jepsenReader) decide(n int, f string, v any) {
	pair, isPair := v.([]any)
	switch {
	case v == nil:
		return
	case f == "cas":
		// [old new] single; [key [old new]] independent
		if isPair && len(pair) == 2 {
			if _, nested := pair[1].([]any); nested {
				j.independent, j.decidedAt = 1, n
			} else {
				j.independent, j.decidedAt = 0, n
			}
		}
	case isPair:
		j.independent, j.decidedAt = 1, n
	default:
		j.independent, j.decidedAt = 0, n
	}
}

// ednJSON turns an EDN register value (nil, an integer, a string, or a
// vector of them) into JSON.
func ednJSON(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case int64:
		return json.RawMessage(strconv.FormatInt(x, 10)), nil
	case *big.Int:
		return json.RawMessage(x.String()), nil
	case string:
		return json.Marshal(x)
	case []any:
		parts := make([]json.RawMessage, len(x))
		for i, item := range x {
			p, err := ednJSON(item)
			if err != nil {
				return nil, err
			}
			parts[i] = p
		}
		return json.Marshal(parts)
	}
	return nil, fmt.Errorf("%v (%T) is not a register value (an integer, a string or nil)", v, v)
}
