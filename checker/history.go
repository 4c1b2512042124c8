package checker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/paxtest/paxtest/checker/history"
)

// Vocabulary lists, per workload, the operations (f) its history may hold.
var Vocabulary = map[string][]string{
	"register": {"get", "put", "cas"},
	"append":   {"append", "read"},
}

// Op is one client operation as the checkers see it: its invocation and
// completion, read once from the history and kept compact.
type Op struct {
	F   string `json:"f"`
	Key string `json:"key"`
	// Value: put and append, the value written; cas, To; get (ok), the
	// value read (Found false: none).
	Value string   `json:"value,omitempty"`
	From  string   `json:"from,omitempty"` // cas
	List  []string `json:"list,omitempty"`
	// Type is ok, fail, info, or "" when the history ends first.
	Type   string `json:"type"`
	Error  string `json:"error,omitempty"` // fail and info: why
	Call   int64  `json:"invoke_time"`
	Return int64  `json:"complete_time,omitempty"`
	Client string `json:"client,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Node   string `json:"node,omitempty"`
	// The small fields last and together: an Op is three cache lines
	// (192 bytes), which a million of them fill measurably faster than
	// 216 bytes of ints and padding.
	Process  int32 `json:"process"`
	Line     int32 `json:"line"`                // the invocation's line
	DoneLine int32 `json:"done_line,omitempty"` // the completion's line (0: none)
	Found    bool  `json:"found,omitempty"`     // get ok: the key had a value
	Final    bool  `json:"final,omitempty"`
}

// Indeterminate reports whether the op may or may not have taken effect.
func (o *Op) Indeterminate() bool { return o.Type == history.Info || o.Type == "" }

// History is a run's history as the checkers and the report use it: the
// client operations in invocation order, indexed by key, and the nemesis
// events.
type History struct {
	Workload string
	Ops      []Op
	Keys     []string // in first-use order
	ByKey    map[string][]int32
	Nemesis  []history.Event
	Torn     *history.Torn
	Last     int64 // the last event's time
	Events   int
}

// KeyOps returns the ops of one key, in invocation order.
func (h *History) KeyOps(key string) []*Op {
	idx := h.ByKey[key]
	out := make([]*Op, len(idx))
	for i, j := range idx {
		out[i] = &h.Ops[j]
	}
	return out
}

// loader builds a History from events in file order, refusing what it does
// not understand with the file, line and field.
type loader struct {
	h      *History
	name   string
	vocab  []string
	open   openOps
	kind   byte // 's' string values, 'i' integer values, 0 not yet known
	kindAt int
	// keys and byKey index the ops by key while loading (one map lookup
	// per invocation); History.ByKey is built from them at the end
	keys  map[string]int
	byKey [][]int32
}

func newLoader(name, workload string) (*loader, error) {
	words, ok := Vocabulary[workload]
	if !ok {
		return nil, fmt.Errorf("unknown workload %q (accepted: register, append)", workload)
	}
	return &loader{h: &History{Workload: workload, ByKey: map[string][]int32{}}, name: name, vocab: words, keys: map[string]int{}}, nil
}

// openOps maps a client to the index of its open op (-1: none). Clients
// are numbered densely from 0 by every writer we know, so most live in a
// slice (one load and one store per event, where a map lookup hashed
// each); a number beyond denseClients goes to the map.
type openOps struct {
	dense  []int32 // index+1; 0: none
	sparse map[history.Process]int
}

const denseClients = 1 << 22

func (o *openOps) get(p history.Process) int {
	if p >= 0 && int(p) < len(o.dense) {
		return int(o.dense[p]) - 1
	}
	if i, ok := o.sparse[p]; ok {
		return i
	}
	return -1
}

func (o *openOps) set(p history.Process, i int) {
	if p >= 0 && p < denseClients { // i fits: lines, and so ops, are fewer than MaxInt32
		if int(p) >= len(o.dense) {
			o.dense = append(o.dense, make([]int32, int(p)+1-len(o.dense))...)
		}
		o.dense[p] = int32(i + 1)
		return
	}
	if o.sparse == nil {
		o.sparse = map[history.Process]int{}
	}
	o.sparse[p] = i
}

func (l *loader) refuse(line int, field string, format string, args ...any) error {
	return &history.ParseError{Path: l.name, Line: line, Field: field, Err: fmt.Errorf(format, args...)}
}

// add takes one event.
func (l *loader) add(e *history.Event) error {
	l.h.Events++
	l.h.Last = max(l.h.Last, e.Time)
	if e.IsNemesis() {
		l.h.Nemesis = append(l.h.Nemesis, *e)
		return nil
	}
	if !slices.Contains(l.vocab, e.F) {
		return l.refuse(e.Line, "f", "%q is not an operation of the %s workload (accepted: %s)", e.F, l.h.Workload, strings.Join(l.vocab, ", "))
	}
	if e.Process > math.MaxInt32 || e.Line > math.MaxInt32 {
		return l.refuse(e.Line, "process", "client number %d (line %d) is beyond what the checker keeps (%d): number the clients from 0", e.Process, e.Line, math.MaxInt32)
	}
	if e.Type == history.Invoke {
		if i := l.open.get(e.Process); i >= 0 {
			return l.refuse(e.Line, "process", "process %d invokes again while its operation from line %d has not completed (one operation at a time per process)", e.Process, l.h.Ops[i].Line)
		}
		op := Op{Process: int32(e.Process), F: e.F, Key: e.Key, Call: e.Time, Client: e.Client, Seq: e.Seq, Final: e.Final, Line: int32(e.Line)}
		if err := l.input(&op, e); err != nil {
			return err
		}
		k, seen := l.keys[e.Key]
		if !seen {
			k = len(l.byKey)
			l.keys[e.Key] = k
			l.h.Keys = append(l.h.Keys, e.Key)
			l.byKey = append(l.byKey, nil)
		}
		l.byKey[k] = append(l.byKey[k], int32(len(l.h.Ops)))
		l.open.set(e.Process, len(l.h.Ops))
		l.h.Ops = append(l.h.Ops, op)
		return nil
	}
	i := l.open.get(e.Process)
	if i < 0 {
		return l.refuse(e.Line, "type", "%s completion of process %d, which has no operation open (no invocation before it)", e.Type, e.Process)
	}
	op := &l.h.Ops[i]
	if e.F != op.F || e.Key != op.Key {
		return l.refuse(e.Line, "f", "completes %s %q but process %d invoked %s %q at line %d", e.F, e.Key, e.Process, op.F, op.Key, op.Line)
	}
	if e.Time < op.Call {
		return l.refuse(e.Line, "time", "completion at %d is before its invocation at %d (line %d)", e.Time, op.Call, op.Line)
	}
	l.open.set(e.Process, -1)
	op.Type, op.Return, op.Node, op.Error, op.DoneLine = e.Type, e.Time, e.Node, e.Error, int32(e.Line)
	if e.Type == history.OK {
		return l.output(op, e)
	}
	if e.Type == history.Fail && strings.HasPrefix(e.Error, ErrCASMismatch) && op.F != "cas" {
		return l.refuse(e.Line, "error", "%s is only a cas's failure, not a %s's", ErrCASMismatch, op.F)
	}
	return nil
}

// ErrCASMismatch is the target's definite cas failure: the cas was
// applied and the register did not hold its from value.
const ErrCASMismatch = "cas-mismatch"

// refusals are the error codes of a failure that was refused before it was
// proposed (an error is "code" or "code: detail"): such an operation never
// reached the state machine.
var refusals = []string{"not-leader", "busy", "bad-request", "unavailable"}

// Refused reports whether a failed operation's error says it never reached
// the state machine. A failed cas that was not refused is evidence: it was
// applied and the register did not hold its from value.
func Refused(errorText string) bool {
	code, _, _ := strings.Cut(errorText, ":")
	return slices.Contains(refusals, strings.TrimSpace(code))
}

// scalar reads a register or list value: a string, or an integer; one
// history uses one kind throughout (so that 1 and "1" never meet).
func (l *loader) scalar(raw json.RawMessage, line int, field string) (string, error) {
	if len(raw) > 1 && raw[0] == '"' {
		s := string(raw[1 : len(raw)-1])
		if bytes.IndexByte(raw, '\\') >= 0 { // escapes: let the decoder read them
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", l.refuse(line, field, "%v", err)
			}
		}
		return s, l.kindOf('s', line, field)
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return strconv.FormatInt(n, 10), l.kindOf('i', line, field)
	}
	return "", l.refuse(line, field, "%s is not a string or an integer", abbreviate(raw))
}

func (l *loader) kindOf(k byte, line int, field string) error {
	switch {
	case l.kind == 0:
		l.kind, l.kindAt = k, line
	case l.kind != k:
		was := map[byte]string{'s': "strings", 'i': "integers"}[l.kind]
		return l.refuse(line, field, "this history's values were %s (since line %d); mixing strings and integers could make 1 and \"1\" one value", was, l.kindAt)
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// input reads an invocation's value.
func (l *loader) input(op *Op, e *history.Event) error {
	var err error
	switch op.F {
	case "put", "append":
		op.Value, err = l.scalar(e.Value, e.Line, "value")
	case "cas":
		op.From, op.Value, err = l.casValue(e.Value, e.Line)
	case "get", "read":
		if !isNull(e.Value) {
			return l.refuse(e.Line, "value", "a %s's invocation carries no value (null), not %s", op.F, abbreviate(e.Value))
		}
	}
	return err
}

// casValue reads {"from": a, "to": b} or Jepsen's [a b].
func (l *loader) casValue(raw json.RawMessage, line int) (from, to string, err error) {
	var pair []json.RawMessage
	var obj struct {
		From *json.RawMessage `json:"from"`
		To   *json.RawMessage `json:"to"`
	}
	switch {
	case json.Unmarshal(raw, &pair) == nil:
		if len(pair) != 2 {
			return "", "", l.refuse(line, "value", "a cas is [from to], not %d values", len(pair))
		}
	case json.Unmarshal(raw, &obj) == nil && obj.From != nil && obj.To != nil:
		pair = []json.RawMessage{*obj.From, *obj.To}
	default:
		return "", "", l.refuse(line, "value", "a cas is {\"from\": …, \"to\": …} or [from to], not %s", abbreviate(raw))
	}
	if from, err = l.scalar(pair[0], line, "value.from"); err != nil {
		return "", "", err
	}
	to, err = l.scalar(pair[1], line, "value.to")
	return from, to, err
}

// output reads what a successful operation returned.
func (l *loader) output(op *Op, e *history.Event) error {
	switch op.F {
	case "get":
		if isNull(e.Value) {
			return nil
		}
		v, err := l.scalar(e.Value, e.Line, "value")
		op.Value, op.Found = v, true
		return err
	case "read":
		if isNull(e.Value) {
			op.List = []string{}
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(e.Value, &items); err != nil {
			return l.refuse(e.Line, "value", "a read returns a list, not %s", abbreviate(e.Value))
		}
		op.List = make([]string, len(items))
		for i, it := range items {
			v, err := l.scalar(it, e.Line, fmt.Sprintf("value[%d]", i))
			if err != nil {
				return err
			}
			op.List[i] = v
		}
	case "put", "append":
		if !isNull(e.Value) {
			v, err := l.scalar(e.Value, e.Line, "value")
			if err == nil && v != op.Value {
				err = l.refuse(e.Line, "value", "%q, but the invocation (line %d) wrote %q", v, op.Line, op.Value)
			}
			return err
		}
	}
	return nil
}

func abbreviate(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	if s == "" {
		return "nothing"
	}
	return s
}

// LoadHistory reads and checks a run's history in one streaming pass.
func LoadHistory(path, workload string) (*History, error) {
	l, err := newLoader(path, workload)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &history.ParseError{Path: path, Err: errors.New("no such file: is this a paxtest run directory?")}
		}
		return nil, &history.ParseError{Path: path, Err: err}
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		// an operation is two lines of 130 to 160 bytes: room for all of
		// them, so that the slice never grows (a growth holds both copies)
		l.h.Ops = make([]Op, 0, st.Size()/250)
		adviseHuge(l.h.Ops)
	}
	torn, err := history.Stream(f, path, l.add)
	if err != nil {
		return nil, err
	}
	l.h.Torn = torn
	return l.done(), nil
}

// done indexes the ops by key and returns the history.
func (l *loader) done() *History {
	for i, key := range l.h.Keys {
		l.h.ByKey[key] = l.byKey[i]
	}
	return l.h
}

// NewHistory builds a History from events in memory (tests, imports),
// with the same checks as LoadHistory; name is used in errors.
func NewHistory(name, workload string, events []history.Event) (*History, error) {
	l, err := newLoader(name, workload)
	if err != nil {
		return nil, err
	}
	for i := range events {
		e := events[i]
		if e.Line == 0 {
			e.Line = i + 1
		}
		if err := l.add(&e); err != nil {
			return nil, err
		}
	}
	return l.done(), nil
}
