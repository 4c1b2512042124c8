package history

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"

	json "github.com/goccy/go-json"
)

// ParseError names the file, line and field of input the reader refuses.
type ParseError struct {
	Path  string
	Line  int
	Field string
	Err   error
}

func (e *ParseError) Error() string {
	where := "history " + e.Path
	if e.Line > 0 {
		where += " line " + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		where += " field " + e.Field
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Torn is a last line the writer never finished (no newline, and not a
// whole event): a run killed mid-write. It is reported, never read.
type Torn struct {
	Line   int   `json:"line"`
	Offset int64 `json:"offset"` // bytes from the file's start
	Bytes  int   `json:"bytes"`
}

// wire is an event as it stands in the file: required fields are pointers,
// so that a missing one is told from a zero one.
type wire struct {
	Index   *int             `json:"index"`
	Time    *json.RawMessage `json:"time"`
	Process *json.RawMessage `json:"process"`
	Type    *string          `json:"type"`
	F       *string          `json:"f"`
	Key     string           `json:"key"`
	Value   json.RawMessage  `json:"value"`
	Client  string           `json:"client"`
	Seq     uint64           `json:"seq"`
	Node    string           `json:"node"`
	Error   string           `json:"error"`
	Final   bool             `json:"final"`
	Targets []int            `json:"targets"`
	Detail  string           `json:"detail"`
}

// decode parses one line into e, checking the format: every field known,
// time a non-negative integer, process a client number or "nemesis", type
// one of four, f given. What an operation means is the checker's to judge.
func decode(line []byte, e *Event) (field string, err error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fieldOf(err), err
	}
	if dec.More() {
		return "", errors.New("more than one JSON value on the line")
	}
	if w.Time == nil {
		return "time", errors.New("missing: every event needs its time (nanoseconds since the run's start)")
	}
	t, err := strconv.ParseInt(string(*w.Time), 10, 64)
	if err != nil || t < 0 {
		return "time", fmt.Errorf("%s is not a non-negative integer of nanoseconds", bytes.TrimSpace(*w.Time))
	}
	if w.Type == nil {
		return "type", errors.New("missing: one of invoke, ok, fail, info")
	}
	switch *w.Type {
	case Invoke, OK, Fail, Info:
	default:
		return "type", fmt.Errorf("%q is not invoke, ok, fail or info", *w.Type)
	}
	if w.F == nil || *w.F == "" {
		return "f", errors.New("missing: every event names its operation")
	}
	if w.Process == nil {
		return "process", errors.New("missing: a client number or \"nemesis\"")
	}
	var p Process
	if err := p.UnmarshalJSON(*w.Process); err != nil {
		return "process", err
	}
	*e = Event{Time: t, Process: p, Type: intern(*w.Type), F: intern(*w.F), Key: w.Key, Value: w.Value, Client: w.Client,
		Seq: w.Seq, Node: w.Node, Error: w.Error, Final: w.Final, Targets: w.Targets, Detail: w.Detail, Index: -1}
	if w.Index != nil {
		if *w.Index < 0 {
			return "index", fmt.Errorf("negative (%d)", *w.Index)
		}
		e.Index = *w.Index
	}
	return "", nil
}

// fieldOf finds the field a decoding error is about, when it says.
func fieldOf(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return ute.Field
	}
	return ""
}

var interned = map[string]string{}

func init() {
	for _, s := range []string{Invoke, OK, Fail, Info, "get", "put", "cas", "append", "read"} {
		interned[s] = s
	}
}

// intern returns the shared copy of a common word (read-only map).
func intern(s string) string {
	if v, ok := interned[s]; ok {
		return v
	}
	return s
}

// chunkSize is how much of the file one decoding worker takes at a time.
const chunkSize = 1 << 20

type chunk struct {
	data   []byte // whole lines
	line   int    // the first line's number
	events []Event
	err    error
	done   chan struct{}
}

// Stream reads the history from r, decoding lines on every core, and
// calls each with every event in file order (Index set to the line order
// when the file has no indices). It stops at the first error: a
// *ParseError for input it refuses (a line that does not parse, an index
// that does not increase), or what each returned. A last line without its
// newline is read when it is a whole event; otherwise it is torn, and
// returned as such.
func Stream(r io.Reader, name string, each func(*Event) error) (*Torn, error) {
	workers := runtime.NumCPU()
	jobs := make(chan *chunk, workers)
	order := make(chan *chunk, 2*workers)
	var torn *Torn
	var readErr error
	go func() {
		defer close(order)
		defer close(jobs)
		buf := make([]byte, 0, chunkSize)
		line, off := 1, int64(0)
		tmp := make([]byte, chunkSize)
		for {
			n, err := io.ReadFull(r, tmp)
			buf = append(buf, tmp[:n]...)
			end := bytes.LastIndexByte(buf, '\n') + 1
			last := err == io.EOF || err == io.ErrUnexpectedEOF
			if last && end < len(buf) {
				// a last line without its newline: whole, or torn?
				var e Event
				if _, derr := decode(buf[end:], &e); derr == nil {
					buf = append(buf, '\n')
					end = len(buf)
				} else {
					torn = &Torn{Line: line + bytes.Count(buf[:end], []byte{'\n'}), Offset: off + int64(end), Bytes: len(buf) - end}
				}
			}
			if end > 0 {
				c := &chunk{data: append([]byte(nil), buf[:end]...), line: line, done: make(chan struct{})}
				line += bytes.Count(c.data, []byte{'\n'})
				off += int64(end)
				buf = append(buf[:0], buf[end:]...)
				order <- c
				jobs <- c
			}
			if last {
				return
			}
			if err != nil {
				readErr = fmt.Errorf("read history %s: %w", name, err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				c.events, c.err = decodeChunk(c, name)
				close(c.done)
			}
		}()
	}
	defer wg.Wait()
	next := 0
	sawIndex, lastIndex := false, -1
	var firstErr error
	for c := range order {
		<-c.done
		if firstErr != nil {
			continue // drain: the reader and workers must finish
		}
		if c.err != nil {
			firstErr = c.err
			continue
		}
		for i := range c.events {
			e := &c.events[i]
			lineNo := e.Line
			switch {
			case e.Index >= 0 && next > 0 && !sawIndex:
				firstErr = &ParseError{Path: name, Line: lineNo, Field: "index", Err: errors.New("this event has an index and the ones before it had none")}
			case e.Index < 0 && sawIndex:
				firstErr = &ParseError{Path: name, Line: lineNo, Field: "index", Err: errors.New("missing, though the events before it had one")}
			case e.Index >= 0 && e.Index <= lastIndex:
				firstErr = &ParseError{Path: name, Line: lineNo, Field: "index", Err: fmt.Errorf("%d does not increase (the line before had %d): duplicated or out of order", e.Index, lastIndex)}
			}
			if firstErr != nil {
				break
			}
			if e.Index >= 0 {
				sawIndex, lastIndex = true, e.Index
			} else {
				e.Index = next
			}
			next++
			if err := each(e); err != nil {
				firstErr = err
				break
			}
		}
		c.events = nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return torn, readErr
}

// decodeChunk decodes every line of a chunk.
func decodeChunk(c *chunk, name string) ([]Event, error) {
	var out []Event
	line := c.line
	data := c.data
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		l := data[:i]
		data = data[i+1:]
		if len(bytes.TrimSpace(l)) > 0 {
			var e Event
			if field, err := decode(l, &e); err != nil {
				return nil, &ParseError{Path: name, Line: line, Field: field, Err: err}
			}
			e.Line = line
			out = append(out, e)
		}
		line++
	}
	return out, nil
}

// ReadFile reads a whole history into memory (small histories, tests and
// tools; checks stream with Stream). A missing file is a *ParseError.
func ReadFile(path string) ([]Event, *Torn, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, &ParseError{Path: path, Err: errors.New("no such file: is this a paxtest run directory?")}
		}
		return nil, nil, &ParseError{Path: path, Err: err}
	}
	defer f.Close()
	var out []Event
	torn, err := Stream(f, path, func(e *Event) error {
		out = append(out, *e)
		return nil
	})
	return out, torn, err
}
