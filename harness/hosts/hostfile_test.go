package hosts

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A host file this program cannot use is refused, naming the file, the
// field (and for a syntax or type error, the line) and what to do.
func TestAHostFileItCannotUseIsRefusedNamingTheField(t *testing.T) {
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(known, nil, 0o600))
	t.Setenv("SSH_AUTH_SOCK", "")
	ok := `"identity_file": "k", "known_hosts": "` + known + `"`
	for _, tc := range []struct {
		name, body, field, says string
	}{
		{"syntax", "{\n" + ok + ",\n\"hosts\": [}", "", "line 3"},
		{"unknown field", `{` + ok + `, "hostz": []}`, "", "unknown field"},
		{"wrong type", "{" + ok + ",\n\"hosts\": [{\"ssh\": 22, \"addr\": \"10.0.0.1\"}]}", "hosts.ssh", "line 2"},
		{"too few", `{` + ok + `, "hosts": [{"ssh": "a", "addr": "10.0.0.1"}]}`, "hosts", "1 hosts for 2 nodes"},
		{"addr", `{` + ok + `, "hosts": [{"ssh": "a", "addr": "a"}, {"ssh": "b", "addr": "10.0.0.2"}]}`, "hosts[0].addr", "not an IP address"},
		{"ssh", `{` + ok + `, "hosts": [{"ssh": "a", "addr": "10.0.0.1"}, {"ssh": "", "addr": "10.0.0.2"}]}`, "hosts[1].ssh", "empty"},
		{"dir", `{` + ok + `, "dir": "rel", "hosts": []}`, "dir", "not an absolute path"},
		{"known_hosts", `{"identity_file": "k", "known_hosts": "/nonexistent/kh", "hosts": []}`, "known_hosts", "ssh-keyscan"},
		{"no key", `{"known_hosts": "` + known + `", "hosts": []}`, "identity_file", "no SSH agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			require.NoError(t, os.WriteFile(path, []byte(tc.body), 0o600))
			_, err := ReadHostFile(path, 2)
			var fe *FileError
			require.True(t, errors.As(err, &fe), "a FileError: %v", err)
			require.Equal(t, path, fe.File)
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, err.Error(), tc.says)
		})
	}
}

func TestAHostFileGetsItsDefaults(t *testing.T) {
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(known, nil, 0o600))
	path := filepath.Join(dir, "hosts.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"identity_file": "k", "known_hosts": "`+known+`",
		"hosts": [{"ssh": "db1", "addr": "10.0.0.1"}, {"ssh": "db2:2222", "addr": "10.0.0.2"}]}`), 0o600))
	f, err := ReadHostFile(path, 2)
	require.NoError(t, err)
	require.Equal(t, "root", f.User)
	require.Equal(t, "/var/tmp/paxtest", f.Dir)
	require.Equal(t, "eth0", f.Dev)
	require.Equal(t, []Host{{SSH: "db1:22", Addr: "10.0.0.1"}, {SSH: "db2:2222", Addr: "10.0.0.2"}}, f.Hosts)
}
