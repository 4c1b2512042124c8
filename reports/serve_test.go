package reports

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func makeRun(t *testing.T, store, path, verdict string, when time.Time) {
	dir := filepath.Join(store, path)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "results.json"), []byte(`{"verdict":"`+verdict+`"}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("report of "+path), 0o644))
	require.NoError(t, os.Chtimes(filepath.Join(dir, "config.json"), when, when))
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeListsNewestFirstFiltersAndStaysInsideTheStore(t *testing.T) {
	store := t.TempDir()
	now := time.Now()
	makeRun(t, store, "register-kill/1", "valid", now.Add(-time.Hour))
	makeRun(t, store, "register-figure8/2", "invalid", now)
	secret := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o644))
	require.NoError(t, os.Symlink(secret, filepath.Join(store, "register-kill", "1", "leak")))
	h, err := StoreHandler(store)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()

	code, body := get(t, srv, "/")
	require.Equal(t, 200, code)
	require.Less(t, strings.Index(body, "register-figure8/2"), strings.Index(body, "register-kill/1"), "newest first")
	require.Contains(t, body, `class="invalid"`)
	_, body = get(t, srv, "/?verdict=invalid")
	require.NotContains(t, body, "register-kill/1")
	code, body = get(t, srv, "/runs/register-kill/1/index.html")
	require.Equal(t, 200, code)
	require.Equal(t, "report of register-kill/1", body)
	code, _ = get(t, srv, "/runs/register-kill/1/leak")
	require.Equal(t, http.StatusForbidden, code, "a link out of the store is refused")
	code, _ = get(t, srv, "/runs/..%2f..%2fetc/passwd")
	require.NotEqual(t, 200, code)

	resp, err := http.Get(srv.URL + "/archive/register-figure8/2.tar.gz")
	require.NoError(t, err)
	defer resp.Body.Close()
	gz, err := gzip.NewReader(resp.Body)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, hdr.Name)
	}
	require.Contains(t, names, "2/results.json")
}

func TestServeShowsTheNewestMutationScoreTable(t *testing.T) {
	store := t.TempDir()
	makeRun(t, store, "register-all/1", "valid", time.Now())
	old := filepath.Join(store, "bench-mutants-20260101T000000")
	newer := filepath.Join(store, "bench-mutants-20260102T000000")
	for i, d := range []string{old, newer} {
		require.NoError(t, os.MkdirAll(d, 0o755))
		md := filepath.Join(d, "mutants.md")
		require.NoError(t, os.WriteFile(md, []byte("| mutation score | "+[]string{"50", "93"}[i]+" % |\n"), 0o644))
		when := time.Now().Add(time.Duration(i-2) * time.Hour)
		require.NoError(t, os.Chtimes(md, when, when))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(store, "bench-detect-20260103T000000"), 0o755)) // still running: no table yet
	h, err := StoreHandler(store)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	code, body := get(t, srv, "/")
	require.Equal(t, 200, code)
	require.Contains(t, body, `<details id="bench-bench-mutants-20260102T000000" open>`)
	require.Contains(t, body, "| mutation score | 93 % |")
	require.Less(t, strings.Index(body, "93 %"), strings.Index(body, "50 %"), "newest first")
	require.NotContains(t, body, "bench-detect-20260103T000000")
}
