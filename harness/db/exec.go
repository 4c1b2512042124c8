package db

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/paxtest/paxtest/target/api"
)

// Exec is a system the user describes in a file (--db exec --db-config
// FILE): the command that starts one node, as a template, and which
// optional parts of the HTTP contract (docs/contract.md) its nodes serve.
// The built-in target runs through it too (examples/paxtest.json), which
// is what shows the contract complete.
type Exec struct {
	h    httpNodes
	cfg  ExecConfig
	self string // this executable, for {paxtest}
	bugs []string
	seed int64
	// recovery is the file's recovery time (or DefaultExecRecovery)
	recovery time.Duration
}

var (
	_ DB                = (*Exec)(nil)
	_ InvariantReporter = (*Exec)(nil)
	_ DamageChecker     = (*Exec)(nil)
)

// CheckedFiles are the file's checked_files.
func (e *Exec) CheckedFiles() []string { return e.cfg.CheckedFiles }

// ReportsInvariants: the contract's status carries violations.
func (e *Exec) ReportsInvariants() {}

// ExecConfig is the description file.
type ExecConfig struct {
	// Name names the system in reports ("" : exec).
	Name string `json:"name"`
	// Command starts one node: the program, then its arguments. Each
	// element may hold placeholders: {id}, {data-dir}, {peer-addr},
	// {client-addr}, {peers} (id=address of every node as this one dials
	// it, comma-separated), {peer-clients} (id=client address of every
	// node), {members} (the ids of the initial configuration), {seed},
	// {bugs} (the --bug switches, or none), {paxtest} (this program).
	Command []string `json:"command"`
	// Env is extra environment, with the same placeholders.
	Env []string `json:"env,omitempty"`
	// Log says the nodes serve GET /debug/log, which the log-agreement
	// check reads; without it that check does not apply.
	Log bool `json:"log"`
	// Members says the nodes serve POST /v1/admin/members.
	Members bool `json:"members"`
	// CheckedFiles are the files of a node's data directory it checks for
	// damage, as globs relative to it ("wal/*.log"); the corrupt nemesis
	// damages only those. None: it is not damaged.
	CheckedFiles []string `json:"checked_files,omitempty"`
	// Recovery is how long a node takes, in the usual case, to serve
	// again after a restart or a healed partition ("1500ms"; "" :
	// DefaultExecRecovery): the run paces its faults by it.
	Recovery string `json:"recovery,omitempty"`
}

// DefaultExecRecovery is an exec system's recovery time when its file
// names none: cautious, since nothing is known of it.
const DefaultExecRecovery = 2 * time.Second

func init() {
	Register("exec", func(o Options) (DB, error) {
		e, err := NewExec(o)
		if err != nil {
			return nil, err
		}
		return e.withParts(), nil
	})
}

// logPart and membersPart are the contract's optional parts, offered only
// by an Exec whose file says its nodes serve them.
type (
	logPart     struct{ h httpNodes }
	membersPart struct{ h httpNodes }
)

func (p logPart) Log(ctx context.Context, n Node, from, to uint64, values bool) ([]api.LogEntry, error) {
	return p.h.Log(ctx, n, from, to, values)
}

func (p membersPart) ChangeMembers(ctx context.Context, n Node, req api.MembersRequest) (api.MembersResponse, error) {
	return p.h.ChangeMembers(ctx, n, req)
}

var (
	_ LogReader     = logPart{}
	_ MemberChanger = membersPart{}
)

// withParts is e offering the optional parts its file names, and no other.
func (e *Exec) withParts() DB {
	l, m := logPart{e.h}, membersPart{e.h}
	switch {
	case e.cfg.Log && e.cfg.Members:
		return struct {
			*Exec
			logPart
			membersPart
		}{e, l, m}
	case e.cfg.Log:
		return struct {
			*Exec
			logPart
		}{e, l}
	case e.cfg.Members:
		return struct {
			*Exec
			membersPart
		}{e, m}
	}
	return e
}

// placeholders are the words a command may hold, each with what it means.
var placeholders = []string{"{id}", "{data-dir}", "{peer-addr}", "{client-addr}", "{peers}", "{peer-clients}", "{members}", "{seed}", "{bugs}", "{paxtest}"}

// NewExec reads the description file o.Config and refuses what it does
// not understand, naming the file and the field.
func NewExec(o Options) (*Exec, error) {
	if o.Config == "" {
		return nil, errors.New("--db exec needs --db-config FILE: the command that starts a node (see examples/paxtest.json)")
	}
	b, err := os.ReadFile(o.Config)
	if err != nil {
		return nil, fmt.Errorf("--db-config: %w", err)
	}
	var cfg ExecConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("--db-config %s: %w (fields: name, command, env, log, members, checked_files, recovery)", o.Config, err)
	}
	if len(cfg.Command) == 0 {
		return nil, fmt.Errorf("--db-config %s: field command: empty; give the program that starts a node and its arguments", o.Config)
	}
	for i, arg := range cfg.words() {
		if rest := strip(arg); strings.ContainsAny(rest, "{}") {
			field := fmt.Sprintf("command[%d]", i)
			if i >= len(cfg.Command) {
				field = fmt.Sprintf("env[%d]", i-len(cfg.Command))
			}
			return nil, fmt.Errorf("--db-config %s: field %s: %q holds an unknown placeholder (accepted: %s)", o.Config, field, arg, strings.Join(placeholders, " "))
		}
	}
	for i, g := range cfg.CheckedFiles {
		if _, err := path.Match(g, ""); err != nil || g == "" || path.IsAbs(g) {
			return nil, fmt.Errorf("--db-config %s: field checked_files[%d]: %q is not a glob relative to the data directory (as \"wal/*.log\")", o.Config, i, g)
		}
	}
	recovery := DefaultExecRecovery
	if cfg.Recovery != "" {
		if recovery, err = time.ParseDuration(cfg.Recovery); err != nil || recovery <= 0 {
			return nil, fmt.Errorf("--db-config %s: field recovery: %q is not a positive duration (as \"1500ms\")", o.Config, cfg.Recovery)
		}
	}
	if len(o.Bugs) > 0 && !slices.ContainsFunc(cfg.words(), func(w string) bool { return strings.Contains(w, "{bugs}") }) {
		return nil, fmt.Errorf("--bug %s: the command in %s has no {bugs} to pass them to", strings.Join(o.Bugs, ","), o.Config)
	}
	self, err := paxtestBinary(o.Binary)
	if err != nil {
		return nil, err
	}
	return &Exec{h: newHTTPNodes(), cfg: cfg, self: self, bugs: o.Bugs, seed: o.Seed, recovery: recovery}, nil
}

// strip removes every known placeholder from s.
func strip(s string) string {
	for _, p := range placeholders {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// words are the command's elements, then the environment's: every string
// a placeholder may stand in.
func (c ExecConfig) words() []string { return append(slices.Clone(c.Command), c.Env...) }

// Name is the file's name for the system, or "exec".
func (e *Exec) Name() string {
	if e.cfg.Name != "" {
		return e.cfg.Name
	}
	return "exec"
}

// Command fills the template's placeholders for node n.
func (e *Exec) Command(n Node, peers []Peer, members []int) (Launch, error) {
	var ps, clients, ms []string
	for _, q := range peers {
		ps = append(ps, fmt.Sprintf("%d=%s", q.ID, q.Dial))
		clients = append(clients, fmt.Sprintf("%d=%s", q.ID, q.ClientAddr))
	}
	for _, id := range members {
		ms = append(ms, strconv.Itoa(id))
	}
	bugs := strings.Join(e.bugs, ",")
	if bugs == "" {
		bugs = "none"
	}
	r := strings.NewReplacer("{id}", strconv.Itoa(n.ID), "{data-dir}", n.DataDir, "{peer-addr}", n.PeerAddr,
		"{client-addr}", n.ClientAddr, "{peers}", strings.Join(ps, ","), "{peer-clients}", strings.Join(clients, ","),
		"{members}", strings.Join(ms, ","), "{seed}", strconv.FormatInt(e.seed*1000+int64(n.ID), 10), "{bugs}", bugs,
		"{paxtest}", e.self)
	fill := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = r.Replace(s)
		}
		return out
	}
	args := fill(e.cfg.Command)
	return Launch{Binary: args[0], Args: args[1:], Env: fill(e.cfg.Env)}, nil
}

// Ready probes the node's /health.
func (e *Exec) Ready(ctx context.Context, n Node) error { return e.h.Ready(ctx, n) }

// Status reads the node's /debug/status.
func (e *Exec) Status(ctx context.Context, n Node) (api.Status, error) { return e.h.Status(ctx, n) }

// Client sends the workloads' operations to the node's client port.
func (e *Exec) Client(n Node) Client { return e.h.Client(n) }

// Recovery is the file's recovery time.
func (e *Exec) Recovery() time.Duration { return e.recovery }

// Close closes the idle connections to the nodes.
func (e *Exec) Close() error { return e.h.Close() }
