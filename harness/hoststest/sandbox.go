// Package hoststest makes stand-in hosts for --hosts ssh on one machine,
// as net/http/httptest makes servers: network namespaces (hosts.Netns),
// each running an sshd of its own on its own address, a key to log in
// with, their host keys in a known_hosts file and a host file naming
// them. The tests of --hosts ssh run against it, so they take the code
// path a user takes to real hosts. It needs root and Debian's
// openssh-server.
//
// It owns only what it starts (the namespaces and the sshds, which die
// with this process); it must not be imported outside tests.
package hoststest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/paxtest/paxtest/harness/hosts"
)

// Sshd is where Debian's openssh-server puts the daemon.
const Sshd = "/usr/sbin/sshd"

// Available says why sandboxes cannot be made here (nil: they can).
func Available() error {
	if err := hosts.NetnsAvailable(); err != nil {
		return err
	}
	if _, err := os.Stat(Sshd); err != nil {
		return fmt.Errorf("needs %s: apt-get install openssh-server (.ci/run installs it)", Sshd)
	}
	if _, err := exec.LookPath("tar"); err != nil {
		return errors.New("needs the tar command")
	}
	return nil
}

// Sandbox is n hosts, each an sshd in a namespace of its own.
type Sandbox struct {
	HostFile string // the host file that names them
	ns       *hosts.Netns
	sshds    []*exec.Cmd
}

// New makes n hosts, keeping keys, configuration and the host file in dir.
func New(dir string, n int) (*Sandbox, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	ns, _, err := hosts.NewNetns(n)
	if err != nil {
		return nil, err
	}
	s := &Sandbox{ns: ns}
	if err := s.start(dir, n); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Sandbox) start(dir string, n int) error {
	hostKey, hostPEM, err := newKey()
	if err != nil {
		return err
	}
	clientKey, clientPEM, err := newKey()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"host_key":   hostPEM,
		"id_ed25519": clientPEM,
		// a home of the sandbox's own: root's shell startup files here
		// are this machine's, not a host's (and may be slow)
		"authorized_keys": append([]byte(`environment="HOME=`+filepath.Join(dir, "home")+`" `), ssh.MarshalAuthorizedKey(clientKey)...),
	}
	var known []string
	f := hosts.HostFile{User: "root", IdentityFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts"),
		Dir: filepath.Join(dir, "on-hosts"), Dev: s.ns.Dev()}
	for id := 1; id <= n; id++ {
		addr := s.ns.Addr(id)
		known = append(known, knownhosts.Line([]string{addr}, hostKey))
		f.Hosts = append(f.Hosts, hosts.Host{SSH: net.JoinHostPort(addr, "22"), Addr: addr})
		files[fmt.Sprintf("sshd_config.%d", id)] = []byte(sshdConfig(dir, addr))
	}
	files["known_hosts"] = []byte(strings.Join(known, "\n") + "\n")
	if files["hosts.json"], err = json.MarshalIndent(f, "", "  "); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	s.HostFile = filepath.Join(dir, "hosts.json")
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		return err
	}
	for id := 1; id <= n; id++ {
		cmd := exec.Command("ip", "netns", "exec", s.ns.Namespace(id), Sshd, "-D", "-e", "-f", filepath.Join(dir, fmt.Sprintf("sshd_config.%d", id)))
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("sshd.%d.log", id)))
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		log.Close()
		if err != nil {
			return fmt.Errorf("start sshd in %s: %w", s.ns.Namespace(id), err)
		}
		s.sshds = append(s.sshds, cmd)
	}
	return s.waitListening(n)
}

// waitListening polls each sshd's port for up to 10 s.
func (s *Sandbox) waitListening(n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for id := 1; id <= n; id++ {
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(s.ns.Addr(id), "22"), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("sshd on %s does not answer: %w", s.ns.Addr(id), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func sshdConfig(dir, addr string) string {
	return strings.Join([]string{
		"ListenAddress " + addr,
		"Port 22",
		"HostKey " + filepath.Join(dir, "host_key"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PidFile none",
		"PermitUserEnvironment HOME",
		"MaxSessions 100",
		"MaxStartups 100",
		"LogLevel ERROR",
	}, "\n") + "\n"
}

// newKey makes an ed25519 key: its public half, and the private in PEM.
func newKey() (ssh.PublicKey, []byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return sp, pem.EncodeToMemory(block), nil
}

// Close stops the sshds (and so every session) and removes the namespaces.
func (s *Sandbox) Close() error {
	var errs []error
	for _, c := range s.sshds {
		if err := c.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, err)
		}
		_ = c.Wait() // killed: its exit status says so
	}
	return errors.Join(append(errs, s.ns.Close())...)
}
