package checker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/target/api"
)

// LogSample is what one node reported of its chosen log at one moment:
// the entries that are new or changed since that node's previous sample.
// A Final sample is taken after the cluster healed, from the node's whole
// log; Missing lists indices the node reported earlier but no longer has.
// A node's final log is its samples folded in order, less Missing.
type LogSample struct {
	Time    int64          `json:"time"`
	Node    string         `json:"node"`
	Final   bool           `json:"final,omitempty"`
	Entries []api.LogEntry `json:"entries"`
	// Same lists index ranges [from, to] where the node holds the value
	// first reported for that index (by any node, in an earlier Entries).
	Same    [][2]uint64 `json:"same,omitempty"`
	Missing []uint64    `json:"missing,omitempty"`
	// Unreadable, on a final sample: why the node's final log could not be
	// read (it did not answer); its earlier samples still count.
	Unreadable string `json:"unreadable,omitempty"`
	// Violations are the invariants the node reported breaking itself
	// (its first ones), ViolationCount how many in all since it started.
	Violations     []string `json:"violations,omitempty"`
	ViolationCount int      `json:"violation_count,omitempty"`
}

// ReadLogs parses logs.jsonl. A missing file yields no samples (the check
// then says unknown); a damaged line is an error naming file and line. A
// last line without its newline is read when it is a whole sample, and
// left out when it is torn (the harness was killed while writing it: the
// samples before it still count).
func ReadLogs(path string) ([]LogSample, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log samples %s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var out []LogSample
	values := map[string]string{} // the sampler writes each digest's value once
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		last := errors.Is(err, io.EOF)
		if err != nil && !last {
			return nil, fmt.Errorf("log samples %s line %d: %w", path, line, err)
		}
		if last && len(bytes.TrimSpace(b)) == 0 {
			return out, nil
		}
		var s LogSample
		if err := json.Unmarshal(b, &s); err != nil {
			if last {
				return out, nil // torn
			}
			return nil, fmt.Errorf("log samples %s line %d: %w", path, line, err)
		}
		for i, e := range s.Entries {
			if e.Value != "" {
				values[e.Digest] = e.Value
			} else {
				s.Entries[i].Value = values[e.Digest]
			}
		}
		out = append(out, s)
		if last {
			return out, nil
		}
	}
}

// LogEntryRef is the part of a log entry that identifies its value.
type LogEntryRef struct {
	Ballot, Digest, Value string
}

type sighting struct {
	Value  string   `json:"value"`
	Digest string   `json:"digest"`
	Ballot string   `json:"ballot"`
	Nodes  []string `json:"nodes"`
	First  int64    `json:"first_seen"` // ns since run start
}

// CheckLogAgreement checks that every log index ever sampled on any node
// held one value ("committed then overwritten" otherwise), and that every
// acknowledged write is in the final logs.
func CheckLogAgreement(h *History, samples []LogSample) Result {
	start := nowMillis()
	a := newLogAudit()
	for _, s := range samples {
		a.add(s)
	}
	res := Result{Verdict: Valid, Checked: len(a.seen)}
	res.Anomalies = a.overwritten()
	if len(a.finalNodes) == 0 {
		res.Detail = fmt.Sprintf("%d indices agree in the samples, but no final logs were read: acknowledged writes cannot be checked", len(a.seen))
		if len(res.Anomalies) == 0 {
			res.Verdict = Unknown
		}
	} else {
		lost := a.lostWrites(h)
		if len(a.unreadable) > 0 && len(lost) > 0 {
			// the writes may be in the logs that could not be read
			res.Verdict = Unknown
			res.Detail = fmt.Sprintf("%d acknowledged writes are in none of the final logs read, but the final logs of %s could not be read", len(lost), strings.Join(a.unreadable, ", "))
			lost = nil
		}
		res.Anomalies = append(res.Anomalies, lost...)
	}
	if len(res.Anomalies) > 0 {
		res.Verdict = Invalid
		res.Detail = fmt.Sprintf("%d anomalies over %d log indices", len(res.Anomalies), len(a.seen))
	} else if res.Verdict == Valid {
		res.Detail = fmt.Sprintf("%d log indices agree on every node; every acknowledged write is in the final logs of %d nodes", len(a.seen), len(a.finalNodes))
	}
	res.Millis = nowMillis() - start
	return res
}

// logAudit gathers what the samples showed: every value each index held
// on each node, and each node's log as last sampled.
type logAudit struct {
	seen       map[uint64]map[string]*sighting // per index, per value digest
	finalNodes map[string]bool
	unreadable []string                           // nodes whose final log could not be read
	current    map[string]map[uint64]api.LogEntry // per node: its log as sampled so far
	first      map[uint64]api.LogEntry            // per index: the entry first reported
}

func newLogAudit() *logAudit {
	return &logAudit{seen: map[uint64]map[string]*sighting{}, finalNodes: map[string]bool{},
		current: map[string]map[uint64]api.LogEntry{}, first: map[uint64]api.LogEntry{}}
}

// add takes one sample in.
func (a *logAudit) add(s LogSample) {
	cur := a.current[s.Node]
	if cur == nil {
		cur = map[uint64]api.LogEntry{}
		a.current[s.Node] = cur
	}
	if s.Final && s.Unreadable != "" {
		a.unreadable = append(a.unreadable, s.Node+" ("+s.Unreadable+")")
		return
	}
	if s.Final {
		a.finalNodes[s.Node] = true
		for _, i := range s.Missing {
			delete(cur, i)
		}
	}
	entries := s.Entries
	for _, r := range s.Same {
		for i := r[0]; i <= r[1] && r[1]-r[0] < 1<<24; i++ {
			if e, ok := a.first[i]; ok {
				entries = append(entries, e)
			}
		}
	}
	for _, e := range entries {
		if _, ok := a.first[e.Index]; !ok {
			a.first[e.Index] = e
		}
		cur[e.Index] = e
		byDigest := a.seen[e.Index]
		if byDigest == nil {
			byDigest = map[string]*sighting{}
			a.seen[e.Index] = byDigest
		}
		sg := byDigest[e.Digest]
		if sg == nil {
			sg = &sighting{Value: e.Value, Digest: e.Digest, Ballot: e.Ballot, First: s.Time}
			byDigest[e.Digest] = sg
		}
		if !contains(sg.Nodes, s.Node) {
			sg.Nodes = append(sg.Nodes, s.Node)
		}
	}
}

// overwritten reports every index seen with two values, in index order.
func (a *logAudit) overwritten() []Anomaly {
	indices := make([]uint64, 0, len(a.seen))
	for i := range a.seen {
		indices = append(indices, i)
	}
	sort.Slice(indices, func(x, y int) bool { return indices[x] < indices[y] })
	var out []Anomaly
	for _, i := range indices {
		if len(a.seen[i]) < 2 {
			continue
		}
		var sgs []sighting
		for _, sg := range a.seen[i] {
			sort.Strings(sg.Nodes)
			sgs = append(sgs, *sg)
		}
		sort.Slice(sgs, func(x, y int) bool { return sgs[x].First < sgs[y].First })
		var parts []string
		for _, sg := range sgs {
			at := "" // a system that keeps no ballot per entry (etcd's revisions)
			if sg.Ballot != "" {
				at = " at ballot " + sg.Ballot
			}
			parts = append(parts, fmt.Sprintf("%s%s on %s (first seen %.3fs)", short(sg.Value), at, strings.Join(sg.Nodes, ","), float64(sg.First)/1e9))
		}
		out = append(out, Anomaly{
			// detectable from the moment a second value was seen
			Kind: KindCommittedThenOverwritten, Index: i, Time: sgs[1].First,
			Detail:   fmt.Sprintf("log index %d was chosen with %d different values: %s", i, len(sgs), strings.Join(parts, "; ")),
			Evidence: mustJSON(sgs),
		})
	}
	return out
}

// lostWrites reports every acknowledged write in no final log. A command
// names its write by client and seq (the target's log). A log that names
// no client (a key-value store's revisions, as etcd's are read) holds
// values: a write is found there by its key and the value it wrote, and
// a stored JSON list holds each of its items (the append workload keeps a
// key's list as one value).
func (a *logAudit) lostWrites(h *History) []Anomaly {
	if h == nil {
		return nil
	}
	final := map[string]bool{}
	decoded := map[string]bool{} // each distinct command once: the nodes' logs mostly agree
	for node := range a.finalNodes {
		for _, e := range a.current[node] {
			if e.Kind != "command" || decoded[e.Value] {
				continue
			}
			decoded[e.Value] = true
			for _, req := range commands(e.Value) {
				if req.Client != "" {
					final[cmdKey(req.Client, req.Seq)] = true
					continue
				}
				final[kvKey(req.Key, req.Value)] = true
				var items []string
				if json.Unmarshal([]byte(req.Value), &items) == nil {
					for _, it := range items {
						final[kvKey(req.Key, it)] = true
					}
				}
			}
		}
	}
	var lost []Anomaly
	for i := range h.Ops {
		p := &h.Ops[i]
		if p.Type != history.OK || !isWrite(p.F) || final[cmdKey(p.Client, p.Seq)] || final[kvKey(p.Key, p.Value)] {
			continue
		}
		lost = append(lost, Anomaly{
			Kind: KindAckWriteLost, Key: p.Key, Time: p.Return,
			Detail: fmt.Sprintf("%s %s by %s (seq %d) was acknowledged at %.3fs by %s but is in no node's final log",
				p.F, p.Key, p.Client, p.Seq, float64(p.Return)/1e9, p.Node),
			Evidence: mustJSON(p),
		})
	}
	return lost
}

// commands reads a log entry's value: one request, or a list of them (a
// revision that changed several keys).
func commands(value string) []api.Request {
	var one api.Request
	if json.Unmarshal([]byte(value), &one) == nil {
		return []api.Request{one}
	}
	var many []api.Request
	if json.Unmarshal([]byte(value), &many) == nil {
		return many
	}
	return nil
}

// kvKey names a write by what it stored; "\x00" cannot be in a key the
// workloads make.
func kvKey(key, value string) string { return "kv\x00" + key + "\x00" + value }

func isWrite(f string) bool { return f == api.OpPut || f == api.OpCAS || f == api.OpAppend }

func cmdKey(client string, seq uint64) string { return client + "/" + strconv.FormatUint(seq, 10) }

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func short(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}

// CheckNodeInvariants reports the invariants of PROTOCOL.md that nodes saw
// themselves break (a promise decreased, a slot applied out of order or
// with a value not recorded chosen, a chosen value changed), as their
// samples carry them. Each violation is one anomaly.
func CheckNodeInvariants(samples []LogSample) Result {
	res := Result{Verdict: Valid}
	reported := map[string]bool{} // "node/violation": each once
	nodes := map[string]bool{}
	for _, s := range samples {
		nodes[s.Node] = true
		for _, v := range s.Violations {
			if reported[s.Node+"/"+v] {
				continue
			}
			reported[s.Node+"/"+v] = true
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: KindInvariantViolated, Time: s.Time,
				Detail: fmt.Sprintf("%s saw itself break an invariant: %s (%d violations in all by then)", s.Node, v, s.ViolationCount)})
		}
	}
	res.Checked = len(nodes)
	switch {
	case len(res.Anomalies) > 0:
		res.Verdict = Invalid
		res.Detail = fmt.Sprintf("%d invariant violations reported by the nodes", len(res.Anomalies))
	case len(nodes) == 0:
		res.Verdict = Unknown
		res.Detail = "no node was sampled"
	default:
		res.Detail = fmt.Sprintf("%d nodes reported no violation of their own invariants", len(nodes))
	}
	return res
}
