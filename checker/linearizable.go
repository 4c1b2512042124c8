package checker

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paxtest/paxtest/checker/history"
)

// regState is the register's state: the operation whose value it holds
// (a put, or a cas that took effect), or nil when it holds none. A state
// that is an operation already in memory costs porcupine no allocation per
// step, where a value copied into an interface did.
type regState = *Op

// holds reports whether the register holds a value, and which.
func holds(s regState) (bool, string) {
	if s == nil {
		return false, ""
	}
	return true, s.Value
}

// RegisterModel is porcupine's model of one register; the checker
// partitions the history by key itself. An operation's input and output
// are both its *Op. A failed cas is evidence too: the target applied it
// and the register did not hold its from value (cas-mismatch).
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return regState(nil) },
		Step: registerStep,
		Equal: func(a, b interface{}) bool {
			fa, va := holds(a.(regState))
			fb, vb := holds(b.(regState))
			return fa == fb && va == vb
		},
		Hash: func(state interface{}) uint64 {
			found, v := holds(state.(regState))
			if !found {
				return 0
			}
			h := uint64(14695981039346656037) // FNV-1a, without allocating
			for i := 0; i < len(v); i++ {
				h = (h ^ uint64(v[i])) * 1099511628211
			}
			return h | 1 // never the empty register's 0
		},
		DescribeOperation: func(input, _ interface{}) string {
			op := input.(*Op)
			res := "?"
			switch {
			case op.Type == history.Fail:
				res = "mismatch"
			case !op.Indeterminate():
				res = "ok"
				if op.F == "get" {
					res = "nil"
					if op.Found {
						res = fmt.Sprintf("%q", op.Value)
					}
				}
			}
			switch op.F {
			case "get":
				return fmt.Sprintf("get(%s) -> %s", op.Key, res)
			case "put":
				return fmt.Sprintf("put(%s, %q) -> %s", op.Key, op.Value, res)
			default:
				return fmt.Sprintf("cas(%s, %q -> %q) -> %s", op.Key, op.From, op.Value, res)
			}
		},
		DescribeState: func(state interface{}) string {
			found, v := holds(state.(regState))
			if !found {
				return "nil"
			}
			return fmt.Sprintf("%q", v)
		},
	}
}

// registerStep is the register's transition: whether op may take effect
// on state, and the state after it.
func registerStep(state, input, _ interface{}) (bool, interface{}) {
	s, op := state.(regState), input.(*Op)
	found, v := holds(s)
	switch op.F {
	case "get":
		if op.Indeterminate() {
			return true, s
		}
		return op.Found == found && (!op.Found || op.Value == v), s
	case "put":
		return true, op
	case "cas":
		match := found && v == op.From
		switch {
		case op.Type == history.Fail: // applied, and it did not match
			return !match, s
		case op.Indeterminate():
			// linearized here, an indeterminate cas acts as a cas;
			// "never happened" is linearizing it after everything
			if match {
				return true, op
			}
			return true, s
		case !match:
			return false, s
		}
		return true, op
	}
	return false, s
}

// never is the return time of an indeterminate operation: it may take
// effect at any point after its invocation.
const never = math.MaxInt64 / 2

// keyOperations turns one key's ops into porcupine operations. A failed
// get or put certainly did not happen and is left out; a failed cas is
// kept as evidence that it did not match, unless it was refused before it
// was proposed (Refused); an indeterminate get is left out too (it reads
// nothing back and changes nothing, so any order allows it, while every
// op left open multiplies the orders porcupine tries); any other
// indeterminate op (info, or no completion) is kept with an open end.
//
// It appends to out[:0]: porcupine keeps no operation it was given (it
// copies them into entries of its own), so a worker reuses one slice.
func keyOperations(out []porcupine.Operation, ops []*Op) []porcupine.Operation {
	out = out[:0]
	for _, op := range ops {
		if op.Type == history.Fail && (op.F != "cas" || Refused(op.Error)) {
			continue
		}
		if op.F == "get" && op.Indeterminate() {
			continue
		}
		ret := op.Return
		if op.Indeterminate() {
			ret = never
		}
		out = append(out, porcupine.Operation{ClientId: int(op.Process), Input: op, Call: op.Call, Output: op, Return: ret})
	}
	return out
}

// Linearizability is the register check's outcome plus porcupine's
// verbose result for the keys the visualization shows.
type Linearizability struct {
	Result
	model porcupine.Model
	shown []shownKey
}

type shownKey struct {
	key  string
	info porcupine.LinearizationInfo
}

// visualized is how many keys the visualization shows at most: every
// failing one up to it, then keys sampled evenly.
const visualized = 20

// CheckLinearizable checks every key's register history with porcupine,
// once, verbosely, a key per core at a time, within timeout overall. The
// keys the visualization shows come from that same check: porcupine's
// verbose result of each failing key (up to visualized) and of a sample
// is kept, every other key's is dropped as soon as it is decided.
func CheckLinearizable(h *History, timeout time.Duration) Linearizability {
	start := time.Now()
	model := RegisterModel()
	if timeout <= 0 {
		timeout = time.Minute
	}
	deadline := start.Add(timeout)
	sample := map[string]bool{}
	for i := 0; i < len(h.Keys) && len(sample) < visualized/2; i += max(1, len(h.Keys)/(visualized/2)) {
		sample[h.Keys[i]] = true
	}
	results := checkKeys(model, h, sample, deadline)
	res := Result{Checked: len(h.Keys), Verdict: Valid}
	out := Linearizability{model: model}
	unknown, total := 0, 0
	for i, r := range results {
		key := h.Keys[i]
		total += r.ops
		switch r.res {
		case porcupine.Illegal:
			res.FailingKeys = append(res.FailingKeys, key)
			first := h.Ops[h.ByKey[key][0]]
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: KindNonLinearizable, Key: key, Time: first.Call,
				Detail: fmt.Sprintf("key %s: no order of its operations is consistent with a single register (see linearizability.html)", key)})
			if len(out.shown) < visualized {
				out.shown = append(out.shown, shownKey{key, r.info})
			}
		case porcupine.Unknown:
			unknown++
		}
	}
	for i, r := range results {
		if sample[h.Keys[i]] && r.res == porcupine.Ok && len(out.shown) < visualized {
			out.shown = append(out.shown, shownKey{h.Keys[i], r.info})
		}
	}
	switch {
	case len(res.FailingKeys) > 0:
		res.Verdict = Invalid
		res.Detail = fmt.Sprintf("%d of %d keys are not linearizable", len(res.FailingKeys), len(h.Keys))
	case unknown > 0:
		res.Verdict = Unknown
		res.Detail = fmt.Sprintf("the check of %d of %d keys did not finish within %v", unknown, len(h.Keys), timeout)
	default:
		res.Detail = fmt.Sprintf("all %d keys linearizable (%d operations)", len(h.Keys), total)
	}
	res.Millis = time.Since(start).Milliseconds()
	out.Result = res
	return out
}

// keyResult is one key's check.
type keyResult struct {
	res  porcupine.CheckResult
	info porcupine.LinearizationInfo
	ops  int
}

// checkKeys checks every key on its own, verbosely, a key per core at a
// time, until deadline, and keeps the verbose result of the sampled keys
// and of the first failing ones: no key is checked twice, so the
// visualization costs no run of its own (a failing key's second, verbose
// run took as long again as its first). Checking every key verbosely cost
// nothing measurable at 1 M operations.
func checkKeys(model porcupine.Model, h *History, sample map[string]bool, deadline time.Time) []keyResult {
	results := make([]keyResult, len(h.Keys))
	var failingShown atomic.Int64
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ptrs []*Op                // this key's ops, reused key after key
			var ops []porcupine.Operation // and as porcupine takes them
			for i := range work {
				ptrs = ptrs[:0]
				for _, j := range h.ByKey[h.Keys[i]] {
					ptrs = append(ptrs, &h.Ops[j])
				}
				ops = keyOperations(ops, ptrs)
				r := keyResult{res: porcupine.Unknown, ops: len(ops)}
				if left := time.Until(deadline); left > 0 {
					r.res, r.info = porcupine.CheckOperationsVerbose(model, ops, left)
				}
				keep := sample[h.Keys[i]] || r.res == porcupine.Illegal && failingShown.Add(1) <= visualized
				if !keep {
					r.info = porcupine.LinearizationInfo{}
				}
				results[i] = r
			}
		}()
	}
	for i := range h.Keys {
		work <- i
	}
	close(work)
	wg.Wait()
	return results
}

// Visualize writes porcupine's visualization of each key it kept (the
// failing ones first, then a sample) into dir, one page per key, and an
// index page linking them to w; faults are shaded on every page.
func (l Linearizability) Visualize(w io.Writer, dir string, shades []Shade) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("visualization: %w", err)
	}
	type link struct{ Key, File, Verdict string }
	var links []link
	failing := map[string]bool{}
	for _, k := range l.FailingKeys {
		failing[k] = true
	}
	for i, sk := range l.shown {
		file := fmt.Sprintf("%03d-%s.html", i, safeName(sk.key))
		info := sk.info
		info.AddAnnotations(nemesisAnnotations(shades))
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			return fmt.Errorf("visualization: %w", err)
		}
		err = porcupine.Visualize(l.model, info, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("visualization of key %s: %w", sk.key, err)
		}
		v := "linearizable"
		if failing[sk.key] {
			v = "not linearizable"
		}
		links = append(links, link{sk.key, filepath.Base(dir) + "/" + file, v})
	}
	return visIndex.Execute(w, map[string]any{"Result": l.Result, "Links": links})
}

var visIndex = template.Must(template.New("vis").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>paxtest linearizability</title>
<style>body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; } li.bad a { color: #b3261e; font-weight: bold; }</style>
</head><body><h1>Linearizability: {{.Result.Verdict}}</h1><p>{{.Result.Detail}}</p>
<p>porcupine's visualization of each key below: the failing keys first, then keys sampled evenly; faults are shaded.</p>
<ul>{{range .Links}}<li{{if eq .Verdict "not linearizable"}} class="bad"{{end}}><a href="{{.File}}">{{.Key}}</a> — {{.Verdict}}</li>
{{else}}<li>no key checked</li>{{end}}</ul></body></html>
`))

// safeName keeps a key usable as a file name.
func safeName(key string) string {
	b := []byte(key)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 60 {
		b = b[:60]
	}
	return string(b)
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
