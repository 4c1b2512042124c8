package hosts

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/paxtest/paxtest/harness/cluster"
)

// SSH runs node i on the i-th host of a host file, over SSH: it installs
// the node's program there (once per content), starts it under a small
// shell that kills it (-9) when the connection closes — the harness's
// Pdeathsig, across the network — streams its output into the node's
// log here, signals it (kill -9, STOP, CONT, TERM) by its pid there, and
// at Close copies each node's data directory back into the run directory
// and removes the run's directory on the host.
//
// On each host paxtest keeps Dir/bin (installed programs) and
// Dir/runs/<run> (a run's node data and pids). One run uses a host at a
// time: a new run kills the nodes a killed harness left there and removes
// their directories.
type SSH struct {
	f       HostFile
	run     string
	clients map[int]*ssh.Client // one connection per node
	agent   io.Closer           // the connection to the SSH agent, if it logs in
	mu      sync.Mutex
	names   map[string]string // local program -> its installed path (by content)
	bins    map[string]bool   // host and local program -> installed there
	dirs    map[int][2]string // node -> local and remote data directory
}

// NewSSH logs in to the first nodes hosts of file f and removes what a
// killed harness left on them, saying so on progress.
func NewSSH(f HostFile, nodes int, progress io.Writer) (*SSH, error) {
	cfg, agentConn, err := clientConfig(f)
	if err != nil {
		return nil, err
	}
	s := &SSH{f: f, run: time.Now().UTC().Format("20060102T150405.000"), clients: map[int]*ssh.Client{}, agent: agentConn,
		names: map[string]string{}, bins: map[string]bool{}, dirs: map[int][2]string{}}
	for id := 1; id <= nodes; id++ {
		c, err := ssh.Dial("tcp", f.Hosts[id-1].SSH, cfg)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("log in to %s (n%d's host) as %s: %w", f.Hosts[id-1].SSH, id, f.User, err), s.closeClients())
		}
		s.clients[id] = c
	}
	for id := 1; id <= nodes; id++ {
		out, err := s.output(id, "", "sh", "-c", staleScript, "sh", f.Dir, s.root())
		if err != nil {
			return nil, errors.Join(fmt.Errorf("n%d's host %s: remove what an earlier run left: %w", id, f.Hosts[id-1].SSH, err), s.closeClients())
		}
		for _, line := range strings.Fields(out) {
			fmt.Fprintf(progress, "removed on %s what a harness that was killed left: %s\n", f.Hosts[id-1].SSH, line)
		}
	}
	return s, nil
}

// killRun is a shell function that kills the nodes of run directory $1
// by their pid files: only a process whose working directory is still
// in that run (the launch shell starts each node in its data directory),
// never one that took an old pid over.
const killRun = `killrun() {
  for p in "$1"/*.pid; do
    [ -f "$p" ] || continue
    pid=$(cat "$p")
    case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$1"/*) kill -9 "$pid" 2>/dev/null;; esac
  done
}
`

// staleScript kills the nodes of earlier runs and removes their
// directories, printing each; then it makes this run's.
const staleScript = killRun + `dir=$1; mine=$2
for run in "$dir"/runs/*; do
  [ -d "$run" ] && [ "$run" != "$mine" ] || continue
  killrun "$run"
  rm -rf "$run" && echo "$run"
done
mkdir -p "$dir/bin" "$mine"`

// clientConfig is how to log in: the user, the key file or the agent,
// and the known hosts every host key is checked against. Logging in
// through the agent, it returns the agent connection too, for Close.
func clientConfig(f HostFile) (*ssh.ClientConfig, io.Closer, error) {
	check, err := knownhosts.New(f.KnownHosts)
	if err != nil {
		return nil, nil, &FileError{Field: "known_hosts", Problem: err.Error()}
	}
	cfg := &ssh.ClientConfig{User: f.User, HostKeyCallback: check, Timeout: 10 * time.Second}
	if f.IdentityFile == "" {
		conn, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
		if err != nil {
			return nil, nil, fmt.Errorf("reach the SSH agent at SSH_AUTH_SOCK: %w", err)
		}
		cfg.Auth = []ssh.AuthMethod{ssh.PublicKeysCallback(agent.NewClient(conn).Signers)}
		return cfg, conn, nil
	}
	key, err := os.ReadFile(f.IdentityFile)
	if err != nil {
		return nil, nil, &FileError{Field: "identity_file", Problem: err.Error()}
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, nil, &FileError{Field: "identity_file", Problem: fmt.Sprintf("%s: %v (a key with a passphrase goes in the agent)", f.IdentityFile, err)}
	}
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	return cfg, nil, nil
}

// root is this run's directory on every host.
func (s *SSH) root() string { return path.Join(s.f.Dir, "runs", s.run) }

// Addr is node id's host's address.
func (s *SSH) Addr(id int) string { return s.f.Hosts[id-1].Addr }

// Ports are fixed; NewSSH killed what an earlier run left on them.
func (*SSH) Ports(id int) (int, int) { return ports(id) }

// Dev is the host file's interface.
func (s *SSH) Dev() string { return s.f.Dev }

// Control: hosts do not reach this machine's proxies.
func (*SSH) Control() string { return "" }

// Local: the data lives on the hosts.
func (*SSH) Local() bool { return false }

func (s *SSH) String() string {
	var hs []string
	for id := 1; id <= len(s.clients); id++ {
		hs = append(hs, s.f.Hosts[id-1].SSH)
	}
	return fmt.Sprintf("hosts %s over SSH as %s (run directory %s on each)", strings.Join(hs, ", "), s.f.User, s.root())
}

// DataDir is node id's data directory on its host; Close copies it into
// local.
func (s *SSH) DataDir(id int, local string) string {
	remote := path.Join(s.root(), fmt.Sprintf("n%d", id), "data")
	s.mu.Lock()
	s.dirs[id] = [2]string{local, remote}
	s.mu.Unlock()
	return remote
}

// quote is argv as one shell command line.
func quote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// asRoot is argv run as root on the host (sudo -n for a user that is not).
func (s *SSH) asRoot(argv []string) []string {
	if s.f.Sudo {
		return append([]string{"sudo", "-n"}, argv...)
	}
	return argv
}

// output runs argv on node id's host and returns what it wrote.
func (s *SSH) output(id int, stdin string, argv ...string) (string, error) {
	sess, err := s.clients[id].NewSession()
	if err != nil {
		return "", fmt.Errorf("open a session on %s: %w", s.f.Hosts[id-1].SSH, err)
	}
	defer sess.Close()
	sess.Stdin = strings.NewReader(stdin)
	out, err := sess.CombinedOutput(quote(argv))
	if err != nil {
		return string(out), fmt.Errorf("%s on %s: %w: %s", strings.Join(argv, " "), s.f.Hosts[id-1].SSH, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Run runs argv as root on node id's host.
func (s *SSH) Run(id int, stdin string, argv ...string) error {
	_, err := s.output(id, stdin, s.asRoot(argv)...)
	return err
}

// install puts the local program bin on node id's host, under a name
// made of its content's hash, unless it is there already; each host is
// asked once per program.
func (s *SSH) install(id int, bin string) (string, error) {
	key := s.f.Hosts[id-1].SSH + "\x00" + bin
	s.mu.Lock()
	done := s.bins[key]
	s.mu.Unlock()
	remote, err := s.installName(bin)
	if err != nil || done {
		return remote, err
	}
	if _, err := s.output(id, "", "test", "-x", remote); err != nil {
		b, err := os.ReadFile(bin)
		if err != nil {
			return "", fmt.Errorf("read the program to install: %w", err)
		}
		if err := s.upload(id, b, remote); err != nil {
			return "", fmt.Errorf("install %s on %s: %w", bin, s.f.Hosts[id-1].SSH, err)
		}
	}
	s.mu.Lock()
	s.bins[key] = true
	s.mu.Unlock()
	return remote, nil
}

// installName is where bin goes on every host, by its content: it is
// read and hashed once per run.
func (s *SSH) installName(bin string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if remote, ok := s.names[bin]; ok {
		return remote, nil
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("read the program to install: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read the program to install: %w", err)
	}
	remote := path.Join(s.f.Dir, "bin", path.Base(bin)+"-"+hex.EncodeToString(h.Sum(nil)[:6]))
	s.names[bin] = remote
	return remote, nil
}

// upload writes b to node id's host as the executable remote, whole or
// not at all (a part file renamed into place).
func (s *SSH) upload(id int, b []byte, remote string) error {
	sess, err := s.clients[id].NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	sess.Stdin = bytes.NewReader(b)
	tmp := remote + ".part" + strconv.Itoa(id)
	out, err := sess.CombinedOutput(fmt.Sprintf("cat > %s && chmod 755 %[1]s && mv %[1]s %s", quote([]string{tmp}), quote([]string{remote})))
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nodeScript starts a node ("$@") in the background, prints its pid,
// keeps it in a pid file, and kills it when this session's input closes
// (the harness closed it, or died); it exits as the node did.
const nodeScript = `pidfile=$1; data=$2; shift 2
mkdir -p "$data" && cd "$data" || exit 125
exec 3<&0
"$@" </dev/null 3<&- 2>&1 &
pid=$!
echo "$pid" > "$pidfile"
echo "paxtest-pid $pid"
( read _ <&3; kill -9 "$pid" 2>/dev/null ) &
watch=$!
exec 3<&-
wait "$pid"; status=$?
kill "$watch" 2>/dev/null
rm -f "$pidfile"
exit "$status"`

// Launch installs spec's program on its node's host and starts it there.
func (s *SSH) Launch(spec cluster.Spec) (cluster.Process, error) {
	id, err := nodeID(spec.Name)
	if err != nil {
		return nil, err
	}
	bin, err := s.install(id, spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	s.mu.Lock()
	data := s.dirs[id][1]
	s.mu.Unlock()
	logf, err := os.OpenFile(spec.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", spec.Name, err)
	}
	p, err := s.start(id, spec, bin, data, logf)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s on %s: %w", spec.Name, s.f.Hosts[id-1].SSH, err)
	}
	return p, nil
}

func (s *SSH) start(id int, spec cluster.Spec, bin, data string, logf *os.File) (*sshProcess, error) {
	sess, err := s.clients[id].NewSession()
	if err != nil {
		return nil, err
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, errors.Join(err, sess.Close())
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nil, errors.Join(err, sess.Close())
	}
	sess.Stderr = logf
	argv := append(append([]string{"sh", "-c", nodeScript, "sh", path.Join(s.root(), spec.Name+".pid"), data, "env"}, forwarded()...), spec.Env...)
	argv = append(append(argv, bin), spec.Args...)
	if err := sess.Start(quote(argv)); err != nil {
		return nil, errors.Join(err, sess.Close())
	}
	br := bufio.NewReader(stdout)
	line, err := br.ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "paxtest-pid "))
	if err != nil || perr != nil {
		stdin.Close()
		werr := sess.Wait()
		return nil, fmt.Errorf("the node did not start (%q, %v): %v", line, err, werr)
	}
	p := &sshProcess{s: s, id: id, name: spec.Name, pid: pid, stdin: stdin, exited: make(chan struct{})}
	go func() {
		_, _ = io.Copy(logf, br) // ends with the session
		p.err = sess.Wait()
		logf.Close()
		sess.Close()
		close(p.exited)
	}()
	return p, nil
}

// forwarded is the harness's own PAXTEST_* environment, which a node
// started here would inherit: a node on a host gets it too, and nothing
// else of this machine's environment.
func forwarded() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PAXTEST_") {
			env = append(env, kv)
		}
	}
	return env
}

// sshProcess is a node on a host: signals go by pid, in a session of
// their own.
type sshProcess struct {
	s      *SSH
	id     int
	name   string
	pid    int
	stdin  io.WriteCloser // closing it kills the node
	exited chan struct{}
	err    error
}

var _ cluster.Process = (*sshProcess)(nil)

func (p *sshProcess) Pid() int                { return p.pid }
func (p *sshProcess) Exited() <-chan struct{} { return p.exited }
func (p *sshProcess) ExitErr() error          { <-p.exited; return p.err }

func (p *sshProcess) signal(sig string) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.s.Run(p.id, "", "kill", "-"+sig, strconv.Itoa(p.pid)); err != nil {
		select {
		case <-p.exited: // it exited meanwhile
			return nil
		default:
		}
		return fmt.Errorf("signal %s to %s: %w", sig, p.name, err)
	}
	return nil
}

func (p *sshProcess) Pause() error  { return p.signal("STOP") }
func (p *sshProcess) Resume() error { return p.signal("CONT") }

func (p *sshProcess) Kill() error {
	if err := p.signal("KILL"); err != nil {
		p.stdin.Close() // the watcher kills it
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		p.stdin.Close()
		return fmt.Errorf("%s (pid %d on %s) did not exit 10s after SIGKILL", p.name, p.pid, p.s.f.Hosts[p.id-1].SSH)
	}
}

func (p *sshProcess) Stop() error {
	if err := p.signal("CONT"); err != nil {
		return err
	}
	if err := p.signal("TERM"); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(3 * time.Second):
		return p.Kill()
	}
}

// Close copies every node's data directory into the run directory here,
// removes the run's directory on each host and logs out.
func (s *SSH) Close() error {
	var errs []error
	s.mu.Lock()
	dirs := s.dirs
	s.mu.Unlock()
	for id := range s.clients { // every node's first: hosts may share a disk
		if d, ok := dirs[id]; ok {
			if err := s.collect(id, d[1], d[0]); err != nil {
				errs = append(errs, fmt.Errorf("collect n%d's data from %s: %w", id, s.f.Hosts[id-1].SSH, err))
			}
		}
	}
	for id := range s.clients {
		if _, err := s.output(id, "", "sh", "-c", killRun+`killrun "$1"; rm -rf "$1"`, "sh", s.root()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, s.closeClients())...)
}

// collect copies the directory remote on node id's host into local.
func (s *SSH) collect(id int, remote, local string) error {
	sess, err := s.clients[id].NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	out, err := sess.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	sess.Stderr = &stderr
	if err := sess.Start(quote([]string{"tar", "-C", remote, "-cf", "-", "."})); err != nil {
		return err
	}
	xerr := untar(out, local)
	_, _ = io.Copy(io.Discard, out) // the rest, so tar can finish
	if err := sess.Wait(); err != nil {
		return fmt.Errorf("tar: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return xerr
}

// untar writes the directories and regular files of a tar stream under
// dir; a name that would leave dir is refused.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the copy: %w", err)
		}
		name := filepath.Clean(h.Name)
		if name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("the copy names %q, outside the data directory", h.Name)
		}
		to := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(to, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(to, tr, h.FileInfo().Mode().Perm()); err != nil {
				return err
			}
		}
	}
}

func writeFile(to string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}

// closeClients logs out of every host and lets go of the agent.
func (s *SSH) closeClients() error {
	var errs []error
	for id, c := range s.clients {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("log out of %s: %w", s.f.Hosts[id-1].SSH, err))
		}
	}
	if s.agent != nil {
		if err := s.agent.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close the SSH agent connection: %w", err))
		}
		s.agent = nil
	}
	return errors.Join(errs...)
}
