package history

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzStream: no input makes the reader panic; it either reads events, each
// with its line, or refuses the input with a *ParseError naming the line.
func FuzzStream(f *testing.F) {
	f.Add([]byte(`{"index":0,"time":1,"process":0,"type":"invoke","f":"put","key":"k","value":"1","client":"p0","seq":1}` + "\n"))
	f.Add([]byte(`{"time":2,"process":"nemesis","type":"info","f":"kill","value":{"f":"kill","nodes":[1]},"targets":[1]}`))
	f.Add([]byte("{\"time\":1,\"proc"))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte{'\n'}) + 1
		_, err := Stream(bytes.NewReader(data), "fuzz", func(e *Event) error {
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("event on line %d of a %d-line input", e.Line, lines)
			}
			return nil
		})
		var pe *ParseError
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("not a ParseError: %v", err)
		}
	})
}
