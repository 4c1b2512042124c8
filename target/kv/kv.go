// Package kv is the target's replicated state machine: registers (get, put,
// cas) and lists (append, read) over string keys, plus the per-client
// dedupe table that makes a retried command apply once (rule 9). Commands
// arrive as chosen log entries, strictly in slot order. It owns the command
// encoding; it must not know about ballots, the network or storage.
package kv

import (
	"encoding/json"
	"fmt"

	"github.com/paxtest/paxtest/target/api"
)

// Encode turns a client request into the bytes of a log entry.
func Encode(r api.Request) ([]byte, error) { return json.Marshal(r) }

// Decode parses a log entry's bytes.
func Decode(b []byte) (api.Request, error) {
	var r api.Request
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode command: %w", err)
	}
	return r, nil
}

type applied struct {
	seq uint64
	res api.Response
}

// Store is the state machine. It is not safe for concurrent use.
type Store struct {
	regs  map[string]string
	lists map[string][]string
	last  map[string]applied // per client: the last command applied and its result
}

// New returns an empty store.
func New() *Store {
	return &Store{regs: map[string]string{}, lists: map[string][]string{}, last: map[string]applied{}}
}

// Apply executes one command at slot and returns its result. A command whose
// (client, seq) was already applied returns the first result and changes
// nothing.
func (s *Store) Apply(slot uint64, r api.Request) api.Response {
	if prev, ok := s.last[r.Client]; ok && r.Seq <= prev.seq {
		if r.Seq == prev.seq {
			return prev.res
		}
		return api.Response{Error: api.ErrUnknown, Detail: "an older command of this client, superseded"}
	}
	res := s.exec(r)
	res.Slot = slot
	s.last[r.Client] = applied{seq: r.Seq, res: res}
	return res
}

func (s *Store) exec(r api.Request) api.Response {
	switch r.Op {
	case api.OpGet:
		return s.Get(r.Key)
	case api.OpPut:
		s.regs[r.Key] = r.Value
		return api.Response{OK: true}
	case api.OpCAS:
		if v, ok := s.regs[r.Key]; !ok || v != r.From {
			return api.Response{Error: api.ErrCASMismatch}
		}
		s.regs[r.Key] = r.To
		return api.Response{OK: true}
	case api.OpAppend:
		s.lists[r.Key] = append(s.lists[r.Key], r.Value)
		return api.Response{OK: true}
	case api.OpRead:
		return s.Read(r.Key)
	}
	return api.Response{Error: api.ErrBadRequest, Detail: fmt.Sprintf("unknown op %q", r.Op)}
}

// Get reads a register from the applied state.
func (s *Store) Get(key string) api.Response {
	v, ok := s.regs[key]
	return api.Response{OK: true, Found: ok, Value: v}
}

// Read returns a copy of a key's list from the applied state.
func (s *Store) Read(key string) api.Response {
	return api.Response{OK: true, List: append([]string{}, s.lists[key]...)}
}
