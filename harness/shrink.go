package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/harness/layout"
	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/reports"
)

// ShrinkOptions are the flags of `paxtest shrink`.
type ShrinkOptions struct {
	Dir      string // an invalid run directory
	Tries    int    // replays per candidate; it is kept only when every one fails
	Verify   int    // replays of the result, to measure how often it fails
	MaxTests int    // candidates tried at most
	Store    string
	Progress io.Writer
}

// ShrinkResult is what `paxtest shrink` found.
type ShrinkResult struct {
	Dir       string     `json:"dir"` // config.json + schedule.jsonl: replayable with --replay
	Run       string     `json:"run"`
	Recorded  int        `json:"recorded_steps"`
	Faults    int        `json:"recorded_fault_steps"`
	Truncated int        `json:"steps_up_to_first_anomaly"`
	Kept      int        `json:"fault_steps_kept"`
	Before    []fault.Op `json:"recorded"`
	Steps     []fault.Op `json:"steps"`
	Tests     int        `json:"candidates_tried"`
	Replays   int        `json:"replays"`
	Failed    int        `json:"verify_failed"` // of Verify replays of the result
	Verify    int        `json:"verify"`
	Seconds   float64    `json:"seconds"`
}

// errNotInvalid: shrinking needs a failing run.
var errNotInvalid = errors.New("not an invalid run")

// Shrink searches, by delta debugging over the recorded schedule's steps
// and then its timings, for a smaller schedule that still fails when
// replayed, and verifies it with Verify replays. Replays are real runs
// (cluster, workload, checkers) of the candidate schedule; a candidate is
// kept when every one of its Tries replays is invalid.
func Shrink(ctx context.Context, o ShrinkOptions) (ShrinkResult, error) {
	started := time.Now()
	if o.Tries < 1 || o.Verify < 1 || o.MaxTests < 1 {
		return ShrinkResult{}, UsageError{fmt.Errorf("--tries %d, --verify %d and --max-tests %d must be positive", o.Tries, o.Verify, o.MaxTests)}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	base, err := ReadRunOptions(o.Dir)
	if err != nil {
		return ShrinkResult{}, err
	}
	res, err := readResults(o.Dir)
	if err != nil {
		return ShrinkResult{}, err
	}
	if res.Verdict != checker.Invalid || len(res.Anomalies) == 0 {
		return ShrinkResult{}, UsageError{fmt.Errorf("shrink %s: its verdict is %s: %w (shrink takes a run that failed)", o.Dir, res.Verdict, errNotInvalid)}
	}
	steps, err := fault.Read(layout.Layout{Dir: o.Dir}.Schedule())
	if err != nil {
		return ShrinkResult{}, UsageError{err}
	}
	first := res.Anomalies[0].Time
	for _, a := range res.Anomalies {
		first = min(first, a.Time)
	}
	dir := filepath.Join(o.Store, "shrink-"+started.UTC().Format("20060102T150405"))
	if err := os.MkdirAll(filepath.Join(dir, "candidates"), 0o755); err != nil {
		return ShrinkResult{}, fmt.Errorf("create %s: %w", dir, err)
	}
	out := ShrinkResult{Dir: dir, Run: o.Dir, Recorded: len(steps), Faults: faults(steps), Verify: o.Verify, Before: steps}
	s := &shrinker{o: o, base: base, dir: dir}

	// Steps after the first anomaly cannot have caused it.
	cur := upTo(steps, first+int64(time.Second))
	out.Truncated = len(cur)
	fmt.Fprintf(o.Progress, "shrink: %d steps recorded, %d up to the first anomaly at %.1fs\n", len(steps), len(cur), float64(first)/1e9)
	if !s.fails(ctx, cur) {
		if len(cur) == len(steps) || !s.fails(ctx, steps) {
			out.Tests, out.Replays = s.tests, s.replays
			return out, fmt.Errorf("shrink %s: the recorded schedule did not fail in every one of %d replays: nothing to shrink against", o.Dir, o.Tries)
		}
		cur = steps
	}

	cur = s.timings(ctx, s.ddmin(ctx, cur))
	out.Steps, out.Kept = cur, faults(cur)
	out.Tests = s.tests
	if err := s.write(layout.Layout{Dir: dir}.Schedule(), cur); err != nil {
		return out, err
	}
	final := s.options(cur, layout.Layout{Dir: dir}.Schedule())
	final.Replay = ""
	if err := reports.WriteJSON(layout.Layout{Dir: dir}.Config(), final); err != nil {
		return out, err
	}
	for i := 0; i < o.Verify && ctx.Err() == nil; i++ {
		if s.replay(ctx, layout.Layout{Dir: dir}.Schedule(), cur) {
			out.Failed++
		}
		fmt.Fprintf(o.Progress, "shrink: verify %d/%d: %d failed\n", i+1, o.Verify, out.Failed)
	}
	out.Replays = s.replays
	out.Seconds = time.Since(started).Seconds()
	if err := reports.WriteJSON(filepath.Join(dir, "shrink.json"), out); err != nil {
		return out, err
	}
	return out, ctx.Err()
}

// ddmin removes chunks of the fault steps, by complements, while the rest
// still fails. Waits on the cluster stay: they are what keeps a replay in
// step with the cluster, not faults.
func (s *shrinker) ddmin(ctx context.Context, cur []fault.Op) []fault.Op {
	n := 2
	for faults(cur) >= 2 && s.tests < s.o.MaxTests && ctx.Err() == nil {
		idx := faultIndices(cur)
		removed := false
		for _, c := range split(len(idx), n) {
			if s.tests >= s.o.MaxTests || ctx.Err() != nil {
				break
			}
			if cand := withoutIndices(cur, idx[c[0]:c[1]]); s.fails(ctx, cand) {
				cur, removed = cand, true
				n = max(n-1, 2)
				break
			}
		}
		if !removed {
			if n >= len(idx) {
				break
			}
			n = min(2*n, len(idx))
		}
	}
	return cur
}

// timings starts the schedule sooner, then halves its long gaps, while it
// still fails.
func (s *shrinker) timings(ctx context.Context, cur []fault.Op) []fault.Op {
	if cand := shiftStart(cur, time.Second); s.tests < s.o.MaxTests && ctx.Err() == nil && cand[0].Time < cur[0].Time && s.fails(ctx, cand) {
		cur = cand
	}
	for i := 0; i < 3 && s.tests < s.o.MaxTests && ctx.Err() == nil; i++ {
		cand := halveGaps(cur, 500*time.Millisecond)
		if cand == nil || !s.fails(ctx, cand) {
			break
		}
		cur = cand
	}
	return cur
}

type shrinker struct {
	o       ShrinkOptions
	base    Options
	dir     string
	tests   int
	replays int
}

// fails reports whether every one of Tries replays of steps is invalid: a
// strict bar, so that a schedule that fails only sometimes is not kept by
// luck and the result fails in most replays.
func (s *shrinker) fails(ctx context.Context, steps []fault.Op) bool {
	if len(steps) == 0 {
		return false
	}
	s.tests++
	file := filepath.Join(s.dir, "candidates", fmt.Sprintf("%03d.jsonl", s.tests))
	if err := s.write(file, steps); err != nil {
		fmt.Fprintf(s.o.Progress, "shrink: %v\n", err)
		return false
	}
	failed := 0
	for i := 0; i < s.o.Tries && ctx.Err() == nil; i++ {
		if s.replay(ctx, file, steps) {
			failed++
		}
		if failed < i+1 {
			break // one pass decides
		}
	}
	ok := failed == s.o.Tries
	fmt.Fprintf(s.o.Progress, "shrink: candidate %d, %d steps: %s\n", s.tests, len(steps), map[bool]string{true: "fails (kept)", false: "passes"}[ok])
	return ok
}

// options is the base run's configuration replaying file, with a time
// limit that covers the schedule and a few seconds more.
func (s *shrinker) options(steps []fault.Op, file string) Options {
	o := s.base
	o.Replay, o.Store, o.StartedAt = file, filepath.Join(s.dir, "runs"), time.Time{}
	o.Progress, o.IsTTY = io.Discard, false
	o.StopOnDivergence = true
	o.TimeLimit = time.Duration(steps[len(steps)-1].Time) + 5*time.Second
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 2 * time.Minute
	}
	return o
}

func (s *shrinker) replay(ctx context.Context, file string, steps []fault.Op) bool {
	s.replays++
	res, err := Run(ctx, s.options(steps, file))
	if err != nil {
		fmt.Fprintf(s.o.Progress, "shrink: replay failed to run: %v\n", err)
		return false
	}
	return res.Verdict == checker.Invalid
}

func (s *shrinker) write(file string, steps []fault.Op) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write schedule: %w", err)
	}
	if err := fault.Encode(f, steps); err != nil {
		return errors.Join(fmt.Errorf("write schedule %s: %w", file, err), f.Close())
	}
	return f.Close()
}

// faults counts the fault steps.
func faults(steps []fault.Op) int { return len(faultIndices(steps)) }

func faultIndices(steps []fault.Op) []int {
	var out []int
	for i, st := range steps {
		if !st.F.IsWait() {
			out = append(out, i)
		}
	}
	return out
}

// withoutIndices removes the steps at the given indices.
func withoutIndices(steps []fault.Op, drop []int) []fault.Op {
	gone := map[int]bool{}
	for _, i := range drop {
		gone[i] = true
	}
	var keep []int
	for i := range steps {
		if !gone[i] {
			keep = append(keep, i)
		}
	}
	return pick(steps, keep)
}

// upTo keeps the steps recorded up to time t.
func upTo(steps []fault.Op, t int64) []fault.Op {
	var keep []int
	for i, st := range steps {
		if st.Time <= t {
			keep = append(keep, i)
		}
	}
	return pick(steps, keep)
}

// without removes steps[from:to].
func without(steps []fault.Op, from, to int) []fault.Op {
	var keep []int
	for i := range steps {
		if i < from || i >= to {
			keep = append(keep, i)
		}
	}
	return pick(steps, keep)
}

// pick keeps the given indices, renumbering await-commit's reference to
// its observe step (a removed observe leaves the wait nothing to wait for).
func pick(steps []fault.Op, keep []int) []fault.Op {
	at := map[int]int{}
	for n, i := range keep {
		at[i] = n
	}
	out := make([]fault.Op, 0, len(keep))
	for _, i := range keep {
		st := steps[i]
		if st.F == fault.AwaitCommit {
			if r, ok := at[st.Ref]; ok && (steps[st.Ref].F == fault.Observe || steps[st.Ref].F == fault.AwaitAccepted) {
				st.Ref = r
			} else {
				st.Ref = -1
			}
		}
		out = append(out, st)
	}
	return out
}

// split cuts n items into k nearly equal [from, to) chunks.
func split(n, k int) [][2]int {
	var out [][2]int
	for i := 0; i < k; i++ {
		from, to := i*n/k, (i+1)*n/k
		if to > from {
			out = append(out, [2]int{from, to})
		}
	}
	return out
}

// shiftStart moves every step earlier so the first happens at t.
func shiftStart(steps []fault.Op, t time.Duration) []fault.Op {
	out := append([]fault.Op(nil), steps...)
	d := out[0].Time - int64(t)
	if d <= 0 {
		return out
	}
	for i := range out {
		out[i].Time -= d
	}
	return out
}

// halveGaps halves every gap between consecutive steps longer than min;
// nil when there is none.
func halveGaps(steps []fault.Op, least time.Duration) []fault.Op {
	out := append([]fault.Op(nil), steps...)
	var shift int64
	changed := false
	for i := 1; i < len(steps); i++ {
		gap := steps[i].Time - steps[i-1].Time
		if gap > int64(least) {
			shift += gap / 2
			changed = true
		}
		out[i].Time = steps[i].Time - shift
	}
	if !changed {
		return nil
	}
	return out
}

// FormatSchedule renders steps one per line, for people.
func FormatSchedule(steps []fault.Op) string {
	var b strings.Builder
	for i, st := range steps {
		fmt.Fprintf(&b, "%3d  %7.3fs  %s\n", i, float64(st.Time)/1e9, describeStep(st))
	}
	return b.String()
}

func describeStep(op fault.Op) string {
	leader := ""
	if op.Leader != 0 {
		leader = fmt.Sprintf("  (leader n%d)", op.Leader)
	}
	switch op.F {
	case fault.Observe:
		return fmt.Sprintf("observe n%d's commit point (%d)", op.Node, op.Slot)
	case fault.AwaitAccepted:
		if op.Sel != nil && op.Sel.New {
			return fmt.Sprintf("await an entry n%d accepts after the wait began (it held up to slot %d)", op.Node, op.Slot)
		}
		return fmt.Sprintf("await an accepted, unchosen slot on n%d (commit point was %d)", op.Node, op.Slot)
	case fault.AwaitLeader:
		return fmt.Sprintf("await a leader among %s (was n%d)", fault.Names(op.Nodes), op.Node)
	case fault.AwaitCommit:
		if op.Ref < 0 {
			return fmt.Sprintf("await-commit on n%d (its observation was removed: no wait)", op.Node)
		}
		return fmt.Sprintf("await n%d's commit point past the one observed at step %d", op.Node, op.Ref)
	}
	return string(op.F) + ": " + op.Describe() + leader
}

// ReadRunOptions reads the options a run directory was made with
// (config.json); a missing or damaged file is a UsageError naming it.
func ReadRunOptions(dir string) (Options, error) {
	b, err := os.ReadFile(layout.Layout{Dir: dir}.Config())
	if err != nil {
		return Options{}, UsageError{fmt.Errorf("%s: %w (is it a run directory?)", dir, err)}
	}
	var o Options
	if err := json.Unmarshal(b, &o); err != nil {
		return Options{}, UsageError{fmt.Errorf("%s/config.json is damaged: %w", dir, err)}
	}
	return o, nil
}

func readResults(dir string) (reports.Results, error) {
	b, err := os.ReadFile(layout.Layout{Dir: dir}.Results())
	if err != nil {
		return reports.Results{}, UsageError{fmt.Errorf("%s: %w (check the run first: paxtest check %s)", dir, err, dir)}
	}
	var r reports.Results
	if err := json.Unmarshal(b, &r); err != nil {
		return reports.Results{}, UsageError{fmt.Errorf("%s/results.json is damaged: %w (paxtest check %s rewrites it)", dir, err, dir)}
	}
	return r, nil
}
