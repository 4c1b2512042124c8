package kv

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/paxtest/paxtest/target/api"
)

// The state machine against an executable specification: seeded sequences
// of commands from a few clients over a few keys, with the retries a
// replicated log produces (the same (client, seq) chosen again in a later
// slot, and an older command of a client chosen after a newer one). Every
// result and the final state must be the specification's. `paxtest bench
// mutants` runs this on every mutant of the store with -kv.report.

var (
	kvBudget = flag.Int("kv.budget", 0, "sequences in TestStoreFollowsItsSpecificationUnderRetries (0: 300)")
	kvReport = flag.String("kv.report", "", "write the first divergence of TestStoreFollowsItsSpecificationUnderRetries to this JSON file")
)

// What the API promises a client is what is judged: a result's code,
// value and list, and the state. Unknown promises nothing, so a store that
// answers unknown where the spec answers definitely, and does not apply
// the command, loses availability, not safety: the spec then forgets the
// command too, and the sequence reports "liveness" unless something else
// diverges. A result's slot and detail are for people and not judged.

// spec is the state machine written a second way: what Apply must do.
type spec struct {
	regs  map[string]string
	lists map[string][]string
	seq   map[string]uint64
	res   map[string]api.Response
}

func newSpec() *spec {
	return &spec{regs: map[string]string{}, lists: map[string][]string{}, seq: map[string]uint64{}, res: map[string]api.Response{}}
}

func (s *spec) clone() *spec {
	c := newSpec()
	maps.Copy(c.regs, s.regs)
	for k, l := range s.lists {
		c.lists[k] = slices.Clone(l)
	}
	maps.Copy(c.seq, s.seq)
	maps.Copy(c.res, s.res)
	return c
}

// promised is what of a result the API promises a client.
func promised(r api.Response) api.Response {
	r.Slot, r.Detail = 0, ""
	if r.List == nil {
		r.List = []string{}
	}
	return r
}

func (s *spec) apply(slot uint64, r api.Request) api.Response {
	if last, seen := s.seq[r.Client]; seen {
		switch {
		case r.Seq == last:
			return s.res[r.Client] // a retry: the first result, nothing changes
		case r.Seq < last:
			return api.Response{Error: api.ErrUnknown, Detail: "an older command of this client, superseded"}
		}
	}
	var res api.Response
	switch r.Op {
	case api.OpGet:
		v, ok := s.regs[r.Key]
		res = api.Response{OK: true, Found: ok, Value: v}
	case api.OpPut:
		s.regs[r.Key] = r.Value
		res = api.Response{OK: true}
	case api.OpCAS:
		if v, ok := s.regs[r.Key]; ok && v == r.From {
			s.regs[r.Key] = r.To
			res = api.Response{OK: true}
		} else {
			res = api.Response{Error: api.ErrCASMismatch}
		}
	case api.OpAppend:
		s.lists[r.Key] = append(s.lists[r.Key], r.Value)
		res = api.Response{OK: true}
	case api.OpRead:
		res = api.Response{OK: true, List: append([]string{}, s.lists[r.Key]...)}
	}
	res.Slot = slot
	s.seq[r.Client], s.res[r.Client] = r.Seq, res
	return res
}

// KVVerdict is what -kv.report writes.
type KVVerdict struct {
	Invariant string `json:"invariant"` // "state machine" when a result or the state diverged; "liveness" when commands were only declined; "" if neither
	Seed      int64  `json:"seed,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Schedules int    `json:"schedules"`
}

// runSequence applies one seeded sequence to the store and the spec and
// returns the first divergence, and how many commands the store declined
// (answered unknown, where the spec answers definitely).
func runSequence(seed int64) (diverged string, declined int) {
	r := rand.New(rand.NewSource(seed))
	st, sp := New(), newSpec()
	clients := []string{"a", "b", "c"}
	keys := []string{"x", "y"}
	next := map[string]uint64{}
	var sent []api.Request // every command issued, for retries
	values := 0
	for slot := uint64(1); slot <= 200; slot++ {
		var req api.Request
		switch k := r.Intn(10); {
		case k < 2 && len(sent) > 0: // a retry chosen again, or an old command late
			req = sent[r.Intn(len(sent))]
		default:
			c := clients[r.Intn(len(clients))]
			next[c]++
			values++
			req = api.Request{Client: c, Seq: next[c], Key: keys[r.Intn(len(keys))]}
			switch r.Intn(5) {
			case 0:
				req.Op = api.OpGet
			case 1:
				req.Op, req.Value = api.OpPut, fmt.Sprint(values%4)
			case 2:
				req.Op, req.From, req.To = api.OpCAS, fmt.Sprint(r.Intn(4)), fmt.Sprint(values%4)
			case 3:
				req.Op, req.Value = api.OpAppend, fmt.Sprint(values)
			default:
				req.Op = api.OpRead
			}
			sent = append(sent, req)
		}
		before := sp.clone()
		got, want := promised(st.Apply(slot, req)), promised(sp.apply(slot, req))
		if got.Error == api.ErrUnknown && want.Error != api.ErrUnknown {
			declined++
			sp = before // not applied, as far as anyone can tell: the final state says if it was
			continue
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("slot %d, %+v: got %+v, want %+v", slot, req, got, want), declined
		}
	}
	for _, k := range keys {
		if got, want := st.Get(k), sp.apply(0, api.Request{Op: api.OpGet, Key: k, Client: "final-" + k, Seq: 1}); got.Value != want.Value || got.Found != want.Found {
			return fmt.Sprintf("final state of %s: got %+v, want %+v", k, got, want), declined
		}
		if got, want := st.Read(k).List, append([]string{}, sp.lists[k]...); !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("final list of %s: got %v, want %v", k, got, want), declined
		}
	}
	return "", declined
}

// TestStoreFollowsItsSpecificationUnderRetries: every result, retries and
// superseded commands included, and the final state match the spec.
func TestStoreFollowsItsSpecificationUnderRetries(t *testing.T) {
	budget := *kvBudget
	if budget <= 0 {
		budget = 300
	}
	v := KVVerdict{}
	for seed := int64(1); seed <= int64(budget) && v.Invariant == ""; seed++ {
		v.Schedules++
		d, declined := runSequence(seed)
		switch {
		case d != "":
			v.Invariant, v.Seed, v.Detail = "state machine", seed, d
		case declined > 0:
			// only the safety of the whole budget decides: go on, but
			// remember the first sequence that lost availability
			if v.Seed == 0 {
				v.Seed, v.Detail = seed, fmt.Sprintf("%d commands answered unknown and not applied, where the specification answers them", declined)
			}
		}
	}
	if v.Invariant == "" && v.Seed != 0 {
		v.Invariant = "liveness"
	}
	if *kvReport != "" {
		b, err := json.Marshal(v)
		if err == nil {
			err = os.WriteFile(*kvReport, b, 0o644)
		}
		if err != nil {
			t.Fatalf("write -kv.report: %v", err)
		}
	}
	if v.Invariant != "" {
		t.Fatalf("seed %d: %s", v.Seed, v.Detail)
	}
}
