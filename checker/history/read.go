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

	"github.com/valyala/fastjson"
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

// decoder decodes lines; one per goroutine. It keeps one copy of each
// short string it has seen (operations, keys, clients, nodes), which a
// history repeats on almost every line.
type decoder struct {
	p       fastjson.Parser
	strings map[string]string
	arena   []byte // values are slices of it: one allocation for many
	// words and nextWord: a few recent strings of small vocabularies (word)
	words    [16]string
	nextWord int
}

// raw copies v's JSON text into the arena and returns that slice. A full
// arena is left to the values that point into it and a new one begun.
func (d *decoder) raw(v *fastjson.Value) []byte {
	if cap(d.arena)-len(d.arena) < 256 {
		d.arena = make([]byte, 0, 64<<10)
	}
	start := len(d.arena)
	d.arena = v.MarshalTo(d.arena)
	return d.arena[start:len(d.arena):len(d.arena)]
}

func newDecoder() *decoder { return &decoder{strings: map[string]string{}} }

// str returns the shared copy of b.
func (d *decoder) str(b []byte) string {
	if s, ok := d.strings[string(b)]; ok {
		return s
	}
	if len(d.strings) > 1<<16 { // too many to be repeats: stop keeping them
		return string(b)
	}
	s := string(b)
	d.strings[s] = s
	return s
}

// decode parses one line into e, checking the format: every field known
// and of its type, time a non-negative integer, process a client number or
// "nemesis", type one of four, f given. What an operation means is the
// checker's to judge.
func (d *decoder) decode(line []byte, e *Event) (field string, err error) {
	v, err := d.p.ParseBytes(line)
	if err != nil {
		return "", fmt.Errorf("not a JSON object: %w", err)
	}
	o, err := v.Object()
	if err != nil {
		return "", fmt.Errorf("not a JSON object but %s", v.Type())
	}
	*e = Event{Index: -1}
	var have seen
	o.Visit(func(k []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		if err = d.field(k, v, e, &have); err != nil {
			field = string(k)
		}
	})
	if err != nil {
		return field, err
	}
	return have.complete(e)
}

// seen records which required fields a line had.
type seen struct{ time, typ, f, process bool }

// complete names the first required field a line lacks or got wrong.
func (have seen) complete(e *Event) (string, error) {
	switch {
	case !have.time:
		return "time", errors.New("missing: every event needs its time (nanoseconds since the run's start)")
	case !have.typ:
		return "type", errors.New("missing: one of invoke, ok, fail, info")
	case e.Type != Invoke && e.Type != OK && e.Type != Fail && e.Type != Info:
		return "type", fmt.Errorf("%q is not invoke, ok, fail or info", e.Type)
	case !have.f || e.F == "":
		return "f", errors.New("missing: every event names its operation")
	case !have.process:
		return "process", errors.New("missing: a client number or \"nemesis\"")
	}
	return "", nil
}

// field decodes one field of an event into e.
func (d *decoder) field(key []byte, v *fastjson.Value, e *Event, have *seen) error {
	var err error
	str := func() string {
		b, serr := v.StringBytes()
		if serr != nil {
			err = fmt.Errorf("want a string, not %s", v.Type())
		}
		return d.str(b)
	}
	switch string(key) { // no copy: the compiler compares the bytes
	case "index":
		n, ierr := v.Int()
		if ierr != nil || n < 0 {
			return fmt.Errorf("want a non-negative integer, not %s", v)
		}
		e.Index = n
	case "time":
		have.time = true
		e.Time, err = nanoseconds(v)
	case "process":
		have.process = true
		e.Process, err = process(v)
	case "type":
		have.typ = true
		if b, serr := v.StringBytes(); serr == nil {
			e.Type = d.typeOf(b)
		} else {
			e.Type = str() // not a string: str says so
		}
	case "f":
		have.f = true
		e.F = str()
	case "key":
		e.Key = str()
	case "value":
		e.Value = d.raw(v)
	case "client":
		e.Client = str()
	case "seq":
		e.Seq, err = v.Uint64()
		if err != nil {
			err = fmt.Errorf("want a non-negative integer, not %s", v)
		}
	case "node":
		e.Node = str()
	case "error":
		e.Error = str()
	case "detail":
		b, serr := v.StringBytes()
		if serr != nil {
			return fmt.Errorf("want a string, not %s", v.Type())
		}
		e.Detail = string(b) // rarely repeated
	case "final":
		e.Final, err = v.Bool()
		if err != nil {
			err = fmt.Errorf("want true or false, not %s", v)
		}
	case "targets":
		e.Targets, err = nodeIDs(v)
	default:
		err = errors.New("unknown field (accepted: index, time, process, type, f, key, value, client, seq, node, error, final, targets, detail)")
	}
	return err
}

// nanoseconds reads a time: a non-negative integer.
func nanoseconds(v *fastjson.Value) (int64, error) {
	if v.Type() != fastjson.TypeNumber {
		return 0, fmt.Errorf("%s is not a non-negative integer of nanoseconds", v)
	}
	t, err := v.Int64()
	if err != nil || t < 0 {
		return 0, fmt.Errorf("%s is not a non-negative integer of nanoseconds", v)
	}
	return t, nil
}

// process reads a client number or "nemesis".
func process(v *fastjson.Value) (Process, error) {
	if v.Type() == fastjson.TypeNumber {
		if n, err := v.Int(); err == nil && n >= 0 {
			return Process(n), nil
		}
	}
	if b, err := v.StringBytes(); err == nil && string(b) == "nemesis" {
		return NemesisProcess, nil
	}
	return 0, fmt.Errorf("process must be a client number or \"nemesis\", got %s", v)
}

// nodeIDs reads a list of node ids.
func nodeIDs(v *fastjson.Value) ([]int, error) {
	items, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("want a list of node ids, not %s", v)
	}
	var ids []int
	for _, it := range items {
		id, err := it.Int()
		if err != nil {
			return nil, fmt.Errorf("want a list of node ids, not %s", v)
		}
		ids = append(ids, id)
	}
	return ids, nil
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
// when the file has no indices); each must copy what it keeps of the
// event, whose memory is reused. It stops at the first error: a
// *ParseError for input it refuses (a line that does not parse, an index
// that does not increase), or what each returned. A last line without its
// newline is read when it is a whole event; otherwise it is torn, and
// returned as such.
func Stream(r io.Reader, name string, each func(*Event) error) (*Torn, error) {
	workers := runtime.NumCPU()
	jobs := make(chan *chunk, workers)
	order := make(chan *chunk, 2*workers)
	sp := &splitter{r: r, name: name, line: 1}
	go sp.run(jobs, order)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := newDecoder()
			for c := range jobs {
				c.events, c.err = d.chunk(c, name)
				recycle(nil, c.data)
				c.data = nil
				close(c.done)
			}
		}()
	}
	defer wg.Wait()
	ix := indexer{name: name, last: -1}
	var firstErr error
	for c := range order {
		<-c.done
		if firstErr != nil {
			continue // drain: the reader and workers must finish
		}
		if firstErr = c.err; firstErr != nil {
			continue
		}
		for i := range c.events {
			e := &c.events[i]
			if firstErr = ix.number(e); firstErr != nil {
				break
			}
			if firstErr = each(e); firstErr != nil {
				break
			}
		}
		recycle(c.events, nil)
		c.events = nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return sp.torn, sp.err
}

// splitter cuts the input into chunks of whole lines, in order. Its torn
// and err are read once the order channel is closed.
type splitter struct {
	r     io.Reader
	name  string
	line  int   // the next chunk's first line
	off   int64 // the next chunk's byte offset
	carry []byte
	torn  *Torn
	err   error
}

func (sp *splitter) run(jobs, order chan<- *chunk) {
	defer close(order)
	defer close(jobs)
	for {
		// each chunk owns its buffer: what was carried over, then a read
		buf := append(buffer(len(sp.carry)+chunkSize), sp.carry...)
		n, err := io.ReadFull(sp.r, buf[len(sp.carry):len(sp.carry)+chunkSize])
		buf = buf[:len(sp.carry)+n]
		end := bytes.LastIndexByte(buf, '\n') + 1
		last := err == io.EOF || err == io.ErrUnexpectedEOF
		if last && end < len(buf) {
			buf, end = sp.lastLine(buf, end)
		}
		sp.carry = append([]byte(nil), buf[end:]...)
		if end > 0 {
			c := &chunk{data: buf[:end], line: sp.line, done: make(chan struct{})}
			sp.line += bytes.Count(c.data, []byte{'\n'})
			sp.off += int64(end)
			order <- c
			jobs <- c
		}
		if last {
			return
		}
		if err != nil {
			sp.err = fmt.Errorf("read history %s: %w", sp.name, err)
			return
		}
	}
}

// lastLine decides whether a last line without its newline is whole (then
// it is read) or torn (then it is reported and left out).
func (sp *splitter) lastLine(buf []byte, end int) ([]byte, int) {
	var e Event
	if _, err := newDecoder().decode(buf[end:], &e); err == nil {
		buf = append(buf, '\n')
		return buf, len(buf)
	}
	sp.torn = &Torn{Line: sp.line + bytes.Count(buf[:end], []byte{'\n'}), Offset: sp.off + int64(end), Bytes: len(buf) - end}
	return buf, end
}

// indexer checks that indices, where the file has them, increase, and
// numbers the events where it has none.
type indexer struct {
	name     string
	next     int
	sawIndex bool
	last     int
}

func (ix *indexer) number(e *Event) error {
	refuse := func(err error) error { return &ParseError{Path: ix.name, Line: e.Line, Field: "index", Err: err} }
	switch {
	case e.Index >= 0 && ix.next > 0 && !ix.sawIndex:
		return refuse(errors.New("this event has an index and the ones before it had none"))
	case e.Index < 0 && ix.sawIndex:
		return refuse(errors.New("missing, though the events before it had one"))
	case e.Index >= 0 && e.Index <= ix.last:
		return refuse(fmt.Errorf("%d does not increase (the line before had %d): duplicated or out of order", e.Index, ix.last))
	}
	if e.Index >= 0 {
		ix.sawIndex, ix.last = true, e.Index
	} else {
		e.Index = ix.next
	}
	ix.next++
	return nil
}

// chunk decodes every line of a chunk.
func (d *decoder) chunk(c *chunk, name string) ([]Event, error) {
	out := (*eventPool.Get().(*[]Event))[:0]
	line := c.line
	data := c.data
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		l := data[:i]
		data = data[i+1:]
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, Event{})
			e := &out[len(out)-1]
			if d.fast(l, e) {
				e.Line = line
				line++
				continue
			}
			if field, err := d.decode(l, e); err != nil {
				recycle(out, nil)
				return nil, &ParseError{Path: name, Line: line, Field: field, Err: err}
			}
			e.Line = line
		}
		line++
	}
	return out, nil
}

// Chunks' buffers and event slices are reused: nothing decoded refers to
// a buffer (every string and value is copied out of it), and each must
// not keep the event it is handed.
var (
	eventPool = sync.Pool{New: func() any { s := make([]Event, 0, chunkSize/128); return &s }}
	bufPool   = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize+chunkSize/8); return &b }}
)

// buffer returns a buffer of at least n bytes' capacity.
func buffer(n int) []byte {
	b := *bufPool.Get().(*[]byte)
	if cap(b) < n {
		return make([]byte, 0, n)
	}
	return b[:0]
}

// recycle hands a chunk's events and buffer back for reuse.
func recycle(events []Event, buf []byte) {
	if events != nil {
		clear(events) // drop what they point at
		events = events[:0]
		eventPool.Put(&events)
	}
	if buf != nil && cap(buf) >= chunkSize {
		buf = buf[:0]
		bufPool.Put(&buf)
	}
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
