// Package checker decides whether a run's history is correct: porcupine's
// linearizability check with a per-key register model, the append
// workload's prefix check, and the log-agreement check ("committed then
// overwritten", "acknowledged write lost"). It aggregates them into one
// verdict: valid, invalid or unknown — a check that cannot decide, or that
// times out, says unknown, never valid.
//
// It reads only what is on disk (history.jsonl, logs.jsonl), so `paxtest
// check` re-derives a run's verdict; it must not talk to nodes or write
// anything but its results.
package checker

import (
	"encoding/json"
)

// Verdict is a check's (and a run's) outcome.
type Verdict string

// Verdicts, as Jepsen's: a check that cannot decide says Unknown, never Valid.
const (
	Valid   Verdict = "valid"
	Invalid Verdict = "invalid"
	Unknown Verdict = "unknown"
)

// Anomaly kinds.
const (
	KindNonLinearizable          = "non-linearizable"
	KindCommittedThenOverwritten = "committed-then-overwritten"
	KindAckWriteLost             = "acknowledged-write-lost"
	KindAppendNotPrefix          = "append-read-not-prefix"
	KindDuplicateAppend          = "duplicate-append"
	KindPhantomValue             = "phantom-value"
	KindInvariantViolated        = "invariant-violated" // a node reported breaking one of PROTOCOL.md's invariants
)

// Anomaly is one piece of evidence that the history is wrong.
type Anomaly struct {
	Kind     string          `json:"kind"`
	Key      string          `json:"key,omitempty"`
	Index    uint64          `json:"index,omitempty"`
	Time     int64           `json:"time"` // when the evidence begins, ns since run start
	Detail   string          `json:"detail"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// Result is one checker's outcome.
type Result struct {
	Verdict     Verdict   `json:"verdict"`
	Detail      string    `json:"detail"`
	Anomalies   []Anomaly `json:"anomalies,omitempty"`
	FailingKeys []string  `json:"failing_keys,omitempty"`
	Checked     int       `json:"checked"` // keys, indices or reads examined
	Millis      int64     `json:"millis"`
}

// Combine is the aggregate verdict: any invalid makes it invalid, else any
// unknown makes it unknown.
func Combine(verdicts ...Verdict) Verdict {
	out := Valid
	for _, v := range verdicts {
		switch {
		case v == Invalid:
			return Invalid
		case v != Valid:
			out = Unknown
		}
	}
	return out
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
