package hosts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// HostFile is --host-file: the hosts nodes run on over SSH, node i on
// Hosts[i-1], and how to log in to them (docs/hosts.md).
type HostFile struct {
	// User logs in on every host (default: root).
	User string `json:"user,omitempty"`
	// IdentityFile is the private key to log in with; without it, the
	// keys of the user's agent (SSH_AUTH_SOCK).
	IdentityFile string `json:"identity_file,omitempty"`
	// KnownHosts holds the hosts' keys (default: ~/.ssh/known_hosts);
	// a host whose key it does not hold is refused.
	KnownHosts string `json:"known_hosts,omitempty"`
	// Sudo runs the commands that need root (iptables, tc, ss, kill) with
	// sudo -n, for a user that is not root.
	Sudo bool `json:"sudo,omitempty"`
	// Dir is where paxtest keeps, on each host, the binaries it installs
	// and each run's node data (default: /var/tmp/paxtest).
	Dir string `json:"dir,omitempty"`
	// Dev is the hosts' interface their peers are reached on, for slowed
	// links (default: eth0).
	Dev   string `json:"dev,omitempty"`
	Hosts []Host `json:"hosts"`
}

// Host is one host: where SSH reaches it, and the address its node binds
// and its peers and the harness reach it on.
type Host struct {
	SSH  string `json:"ssh"`  // host:port (port 22 if omitted)
	Addr string `json:"addr"` // an IP address of the host's
}

// FileError is a host file this program cannot use: the file, the field
// and what to do.
type FileError struct {
	File, Field, Problem string
}

func (e *FileError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("--host-file %s: %s", e.File, e.Problem)
	}
	return fmt.Sprintf("--host-file %s: field %s: %s", e.File, e.Field, e.Problem)
}

// ReadHostFile reads and checks path for nodes nodes, filling in the
// defaults.
func ReadHostFile(path string, nodes int) (HostFile, error) {
	bad := func(field, format string, args ...any) (HostFile, error) {
		return HostFile{}, &FileError{File: path, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return bad("", "%v", err)
	}
	var f HostFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return bad("", "line %d: %v", 1+bytes.Count(b[:se.Offset], []byte("\n")), err)
		case errors.As(err, &te):
			return bad(te.Field, "line %d: %v", 1+bytes.Count(b[:te.Offset], []byte("\n")), err)
		}
		return bad("", "%v (fields: user, identity_file, known_hosts, sudo, dir, dev, hosts[].ssh, hosts[].addr)", err)
	}
	if f.User == "" {
		f.User = "root"
	}
	if f.Dir == "" {
		f.Dir = "/var/tmp/paxtest"
	}
	if !filepath.IsAbs(f.Dir) {
		return bad("dir", "%q is not an absolute path", f.Dir)
	}
	if f.Dev == "" {
		f.Dev = "eth0"
	}
	if f.KnownHosts == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return bad("known_hosts", "none given, and no home directory to find ~/.ssh/known_hosts in: %v", err)
		}
		f.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	if _, err := os.Stat(f.KnownHosts); err != nil {
		return bad("known_hosts", "%v (paxtest checks every host's key: add them with ssh-keyscan)", err)
	}
	if f.IdentityFile == "" && os.Getenv("SSH_AUTH_SOCK") == "" {
		return bad("identity_file", "none given, and no SSH agent (SSH_AUTH_SOCK) to log in with")
	}
	if len(f.Hosts) < nodes {
		return bad("hosts", "%d hosts for %d nodes (spares included): list one host per node", len(f.Hosts), nodes)
	}
	for i := range f.Hosts {
		h := &f.Hosts[i]
		if net.ParseIP(h.Addr) == nil {
			return bad(fmt.Sprintf("hosts[%d].addr", i), "%q is not an IP address", h.Addr)
		}
		if h.SSH == "" {
			return bad(fmt.Sprintf("hosts[%d].ssh", i), "empty: give the host SSH reaches (host or host:port)")
		}
		if !strings.Contains(h.SSH, ":") {
			h.SSH = net.JoinHostPort(h.SSH, "22")
		}
		if _, _, err := net.SplitHostPort(h.SSH); err != nil {
			return bad(fmt.Sprintf("hosts[%d].ssh", i), "%q: %v (give host or host:port)", h.SSH, err)
		}
	}
	return f, nil
}
