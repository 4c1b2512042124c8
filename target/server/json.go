package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	gojson "github.com/goccy/go-json"
)

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body is not a valid JSON operation: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// an error here is the client gone away: nobody is left to answer
	_ = gojson.NewEncoder(w).Encode(v)
}
