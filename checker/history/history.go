// Package history is the run's history format: one JSON object per line in
// history.jsonl, written as the run goes so that a crash of the harness
// leaves a checkable prefix. Field names follow Jepsen's: time
// (nanoseconds since run start), process, type (invoke, ok, fail, info), f,
// key, value. Nemesis events share the stream with process "nemesis".
//
// It owns the format, the writer (which never truncates or overwrites an
// existing file) and the parser (which names the file and line of bad
// input); it must not interpret operations (that is checker/).
package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// Event types.
const (
	Invoke = "invoke"
	OK     = "ok"
	Fail   = "fail"
	Info   = "info" // indeterminate: the operation may or may not have happened
)

// NemesisProcess is the process of nemesis events.
const NemesisProcess = -1

// Process is a client number, or the nemesis (written as "nemesis").
type Process int

// MarshalJSON writes clients as numbers and the nemesis as "nemesis".
func (p Process) MarshalJSON() ([]byte, error) {
	if p == NemesisProcess {
		return []byte(`"nemesis"`), nil
	}
	return []byte(strconv.Itoa(int(p))), nil
}

// UnmarshalJSON reads either form.
func (p *Process) UnmarshalJSON(b []byte) error {
	if string(b) == `"nemesis"` {
		*p = NemesisProcess
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 {
		return fmt.Errorf("process must be a client number or \"nemesis\", got %s", b)
	}
	*p = Process(n)
	return nil
}

// Event is one line of the history.
type Event struct {
	Index   int             `json:"index"`
	Time    int64           `json:"time"`
	Process Process         `json:"process"`
	Type    string          `json:"type"`
	F       string          `json:"f"`
	Key     string          `json:"key,omitempty"`
	Value   json.RawMessage `json:"value"`
	// Client and Seq identify the operation to the target (rule 9).
	Client string `json:"client,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Node   string `json:"node,omitempty"`  // the node that answered, or the nemesis' targets
	Error  string `json:"error,omitempty"` // fail and info: why
	Final  bool   `json:"final,omitempty"` // a final read after the cluster healed
	// Targets of a nemesis event (node ids), and its free-form detail.
	Targets []int  `json:"targets,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Line is the line the event was read from (0: not read from a file).
	Line int `json:"-"`
}

// IsNemesis reports whether e is a nemesis event.
func (e Event) IsNemesis() bool { return e.Process == NemesisProcess }

// CAS is the value of a cas operation.
type CAS struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Writer appends events to a history file. It is safe for concurrent use.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	next int
	err  error
}

// Create creates path for writing; it refuses to touch an existing file.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create history %s: %w", path, err)
	}
	return &Writer{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Append writes e (its Index is assigned here) and returns it. Lines reach
// the file at every Flush and at Close.
func (w *Writer) Append(e Event) (Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return e, w.err
	}
	e.Index = w.next
	w.next++
	if e.Value == nil {
		e.Value = json.RawMessage("null")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return e, fmt.Errorf("encode history event: %w", err)
	}
	if _, err := w.w.Write(append(b, '\n')); err != nil {
		w.err = fmt.Errorf("write history: %w", err)
	}
	return e, w.err
}

// Flush pushes buffered lines to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		if err := w.w.Flush(); err != nil {
			w.err = fmt.Errorf("write history: %w", err)
		}
	}
	return w.err
}

// Close flushes, syncs and closes the file.
func (w *Writer) Close() error {
	err := w.Flush()
	w.mu.Lock()
	defer w.mu.Unlock()
	if serr := w.f.Sync(); err == nil && serr != nil {
		err = fmt.Errorf("sync history: %w", serr)
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close history: %w", cerr)
	}
	return err
}
