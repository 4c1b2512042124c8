package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paxtest/paxtest/harness/history"
)

// regInput is a register operation's input.
type regInput struct {
	Key  string
	F    string // get, put, cas
	V    string // put: value
	From string
	To   string
}

// regOutput is what the operation returned.
type regOutput struct {
	Unknown bool // indeterminate (info): any outcome is possible
	Found   bool
	V       string
}

type regState struct {
	Found bool
	V     string
}

// RegisterModel is porcupine's model of one register per key, partitioned
// by key.
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range h {
				k := op.Input.(regInput).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() interface{} { return regState{} },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			s, in, out := state.(regState), input.(regInput), output.(regOutput)
			switch in.F {
			case "get":
				if out.Unknown {
					return true, s
				}
				return out.Found == s.Found && (!out.Found || out.V == s.V), s
			case "put":
				return true, regState{Found: true, V: in.V}
			case "cas":
				match := s.Found && s.V == in.From
				if out.Unknown {
					// linearized here, an indeterminate cas acts as a cas;
					// "never happened" is linearizing it after everything
					if match {
						return true, regState{Found: true, V: in.To}
					}
					return true, s
				}
				if !match {
					return false, s
				}
				return true, regState{Found: true, V: in.To}
			}
			return false, s
		},
		Equal: func(a, b interface{}) bool { return a.(regState) == b.(regState) },
		Hash: func(state interface{}) uint64 {
			s := state.(regState)
			h := fnv.New64a()
			if s.Found {
				h.Write([]byte{1})
			}
			h.Write([]byte(s.V))
			return h.Sum64()
		},
		DescribeOperation: func(input, output interface{}) string {
			in, out := input.(regInput), output.(regOutput)
			res := "?"
			if !out.Unknown {
				res = "ok"
				if in.F == "get" {
					res = "nil"
					if out.Found {
						res = fmt.Sprintf("%q", out.V)
					}
				}
			}
			switch in.F {
			case "get":
				return fmt.Sprintf("get(%s) -> %s", in.Key, res)
			case "put":
				return fmt.Sprintf("put(%s, %q) -> %s", in.Key, in.V, res)
			default:
				return fmt.Sprintf("cas(%s, %q -> %q) -> %s", in.Key, in.From, in.To, res)
			}
		},
		DescribeState: func(state interface{}) string {
			s := state.(regState)
			if !s.Found {
				return "nil"
			}
			return fmt.Sprintf("%q", s.V)
		},
	}
}

// never is the return time of an indeterminate operation: it may take
// effect at any point after its invocation.
const never = math.MaxInt64 / 2

// registerOperations turns the history into porcupine operations. A failed
// operation certainly did not happen and is left out; an indeterminate one
// (info, or no completion) is kept with an open end and an unknown output.
func registerOperations(h []history.Event) ([]porcupine.Operation, error) {
	var ops []porcupine.Operation
	for _, p := range pairOperations(h) {
		inv := p.invoke
		in := regInput{Key: inv.Key, F: inv.F}
		switch inv.F {
		case "get":
		case "put":
			if err := json.Unmarshal(inv.Value, &in.V); err != nil {
				return nil, fmt.Errorf("history event %d: put value: %w", inv.Index, err)
			}
		case "cas":
			var c history.CAS
			if err := json.Unmarshal(inv.Value, &c); err != nil {
				return nil, fmt.Errorf("history event %d: cas value: %w", inv.Index, err)
			}
			in.From, in.To = c.From, c.To
		default:
			continue
		}
		op := porcupine.Operation{ClientId: int(inv.Process), Input: in, Call: inv.Time}
		switch p.done.Type {
		case history.Fail:
			continue
		case history.OK:
			out := regOutput{}
			if inv.F == "get" {
				var v *string
				if err := json.Unmarshal(p.done.Value, &v); err != nil {
					return nil, fmt.Errorf("history event %d: get result: %w", p.done.Index, err)
				}
				if v != nil {
					out.Found, out.V = true, *v
				}
			}
			op.Output, op.Return = out, p.done.Time
		default: // info, or the history ended first
			op.Output, op.Return = regOutput{Unknown: true}, never
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// Linearizability is the register check's outcome plus what the
// visualization needs.
type Linearizability struct {
	Result
	ops   []porcupine.Operation
	model porcupine.Model
}

// CheckLinearizable checks every key's register history with porcupine,
// two keys at a time, within timeout overall.
func CheckLinearizable(h []history.Event, timeout time.Duration) Linearizability {
	start := time.Now()
	model := RegisterModel()
	ops, err := registerOperations(h)
	if err != nil {
		return Linearizability{Result: Result{Verdict: Unknown, Detail: err.Error()}}
	}
	if timeout <= 0 {
		timeout = time.Minute
	}
	parts := model.Partition(ops)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type keyResult struct {
		key string
		res porcupine.CheckResult
		t   int64
	}
	results := make([]keyResult, len(parts))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				left := time.Until(deadline(ctx))
				r := porcupine.Unknown
				if left > 0 {
					r = porcupine.CheckOperationsTimeout(model, parts[i], left)
				}
				results[i] = keyResult{key: parts[i][0].Input.(regInput).Key, res: r, t: parts[i][0].Call}
			}
		}()
	}
	for i := range parts {
		work <- i
	}
	close(work)
	wg.Wait()
	res := Result{Checked: len(parts), Verdict: Valid}
	unknown := 0
	for _, r := range results {
		switch r.res {
		case porcupine.Illegal:
			res.FailingKeys = append(res.FailingKeys, r.key)
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: KindNonLinearizable, Key: r.key, Time: r.t,
				Detail: fmt.Sprintf("key %s: no order of its operations is consistent with a single register (see linearizability.html)", r.key)})
		case porcupine.Unknown:
			unknown++
		}
	}
	sort.Strings(res.FailingKeys)
	switch {
	case len(res.FailingKeys) > 0:
		res.Verdict = Invalid
		res.Detail = fmt.Sprintf("%d of %d keys are not linearizable", len(res.FailingKeys), len(parts))
	case unknown > 0:
		res.Verdict = Unknown
		res.Detail = fmt.Sprintf("the check of %d of %d keys did not finish within %v", unknown, len(parts), timeout)
	default:
		res.Detail = fmt.Sprintf("all %d keys linearizable (%d operations)", len(parts), len(ops))
	}
	res.Millis = time.Since(start).Milliseconds()
	return Linearizability{Result: res, ops: ops, model: model}
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// Visualize writes porcupine's visualization of the failing keys plus up to
// sample other keys, with nemesis events as annotations, so the file stays
// a few MB for large histories.
func (l Linearizability) Visualize(w io.Writer, shades []Shade, sample int) error {
	keep := map[string]bool{}
	for _, k := range l.FailingKeys {
		keep[k] = true
	}
	var keys []string
	seen := map[string]bool{}
	for _, op := range l.ops {
		if k := op.Input.(regInput).Key; !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for i := 0; i < len(keys) && sample > 0; i += max(1, len(keys)/sample) {
		if !keep[keys[i]] {
			keep[keys[i]] = true
			sample--
		}
	}
	var sub []porcupine.Operation
	for _, op := range l.ops {
		if keep[op.Input.(regInput).Key] {
			sub = append(sub, op)
		}
	}
	_, info := porcupine.CheckOperationsVerbose(l.model, sub, 30*time.Second)
	info.AddAnnotations(nemesisAnnotations(shades))
	return porcupine.Visualize(l.model, info, w)
}

// Shade is a fault interval the visualization shades.
type Shade struct {
	Start, End    int64
	Label, Detail string
}

// nemesisAnnotations shades every fault interval.
func nemesisAnnotations(shades []Shade) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, s := range shades {
		out = append(out, porcupine.Annotation{Tag: "nemesis", Start: s.Start, End: s.End,
			Description: s.Label, Details: s.Detail, BackgroundColor: "#fde2e2"})
	}
	return out
}
