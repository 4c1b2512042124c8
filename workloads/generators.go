package workloads

import (
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"

	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/target/api"
)

// keys hands each group of a few workers one key at a time, moving the
// group to a fresh key after a bounded number of operations — Jepsen's
// independent keys, which keep each key's history small enough for
// porcupine — or sooner, once writes of indeterminate outcome pile up on
// it: each stays open to the end of the history, and the orders the
// check must try grow with every one (a system unavailable for seconds
// turns every write it is sent into one).
type keys struct {
	groupSize int
	opsPerKey int

	mu    sync.Mutex
	count map[int]int    // ops issued on the group's current key
	open  map[int]int    // writes of unknown outcome on the group's current key
	gen   map[int]int    // the group's current key generation
	cur   map[int]string // the group's current key
	used  []string
	seen  map[string]bool

	values atomic.Int64
}

func newKeys(concurrency, groupSize, opsPerKey int) *keys {
	return &keys{groupSize: groupSize, opsPerKey: opsPerKey, count: map[int]int{}, open: map[int]int{}, gen: map[int]int{}, cur: map[int]string{}, seen: map[string]bool{}}
}

// openWritesPerKey is how many writes of unknown outcome a key takes
// before its group moves on.
const openWritesPerKey = 5

// indeterminate counts a write of unknown outcome on key, worker w's.
func (k *keys) indeterminate(w int, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if g := w / k.groupSize; key == k.cur[g] {
		k.open[g]++
	}
}

func (k *keys) next(prefix string, w int) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	g := w / k.groupSize
	if k.count[g] >= k.opsPerKey || k.open[g] >= openWritesPerKey {
		k.count[g], k.open[g] = 0, 0
		k.gen[g]++
	}
	k.count[g]++
	key := fmt.Sprintf("%s%d-%d", prefix, g, k.gen[g])
	k.cur[g] = key
	if !k.seen[key] {
		k.seen[key] = true
		k.used = append(k.used, key)
	}
	return key
}

func (k *keys) all() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.used...)
}

// value returns a value never written before in this run.
func (k *keys) value() string { return fmt.Sprintf("%d", k.values.Add(1)) }

// Register is the register workload: get, put and cas with unique values.
type Register struct {
	keys *keys
	mu   sync.Mutex
	last map[string]string // per key: a value recently seen, for cas
}

func (*Register) Name() string      { return "register" }
func (*Register) FinalRead() string { return api.OpGet }
func (r *Register) Keys() []string  { return r.keys.all() }

func (r *Register) Next(w int, rnd *rand.Rand) Op {
	key := r.keys.next("r", w)
	r.mu.Lock()
	last, known := r.last[key]
	r.mu.Unlock()
	switch x := rnd.Intn(10); {
	case x < 4:
		return Op{F: api.OpGet, Key: key}
	case x < 7 || !known:
		return Op{F: api.OpPut, Key: key, Value: r.keys.value()}
	default:
		return Op{F: api.OpCAS, Key: key, From: last, To: r.keys.value()}
	}
}

func (r *Register) Observe(w int, op Op, typ string, res api.Response) {
	if typ == history.Info && op.F != api.OpGet {
		r.keys.indeterminate(w, op.Key)
	}
	if typ != history.OK {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch op.F {
	case api.OpGet:
		if res.Found {
			r.last[op.Key] = res.Value
		}
	case api.OpPut:
		r.last[op.Key] = op.Value
	case api.OpCAS:
		r.last[op.Key] = op.To
	}
}

// Append is the append workload: unique values appended to lists, and reads
// of whole lists.
type Append struct{ keys *keys }

func (*Append) Name() string                          { return "append" }
func (*Append) FinalRead() string                     { return api.OpRead }
func (a *Append) Keys() []string                      { return a.keys.all() }
func (*Append) Observe(int, Op, string, api.Response) {}

func (a *Append) Next(w int, rnd *rand.Rand) Op {
	key := a.keys.next("a", w)
	if rnd.Intn(2) == 0 {
		return Op{F: api.OpRead, Key: key}
	}
	return Op{F: api.OpAppend, Key: key, Value: a.keys.value()}
}
