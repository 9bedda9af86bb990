// Package etcdproc runs one bundled etcd binary as a private, loopback-only child for
// a migration step: start it, stream its log, wait until it has really taken over the
// data, make it save a snapshot, and stop it gracefully.
package etcdproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
)

// Member is the identity and the private URLs every step's etcd runs with.
type Member struct {
	Name string
	// ClientURL is the single private client URL; it must be loopback.
	ClientURL                string
	ListenPeerURLs           string
	InitialAdvertisePeerURLs string
	InitialCluster           string
	// ExtraArgs go last on the command line (ETCD_CREDS, e.g. peer TLS flags).
	ExtraArgs []string
	// RaftArgs: the cluster's raft timing flags (from ETCD_CREDS) that ExtraArgs
	// lacks because INITIAL_CLUSTER named one member; given when the member
	// turns out to be one of several (the data records them).
	RaftArgs []string
	// MultiMember: the member belongs to a cluster of several (the data records
	// them, or the initial cluster names them). Its peers must reach it: the peer
	// listener stays as given and raft keeps its timing.
	MultiMember bool
}

// Config says which etcd to run on which data and where it listens.
type Config struct {
	Member
	Binary  string           // path of etcd-<Version>
	Version *version.Version // version of Binary
	DataDir string
	// WALDir is etcd's --wal-dir when the WAL lives outside the data dir.
	WALDir string
	// SnapshotCount is passed as --snapshot-count: small, so the step can make etcd
	// save a snapshot with a couple of writes. 0 leaves etcd's default.
	SnapshotCount int
	// EnableV2 serves the v2 API (etcd2 data).
	EnableV2 bool
	// QuotaBackendBytes, when set, is passed as --quota-backend-bytes (etcd 3.0+).
	QuotaBackendBytes int64
	// DowngradeCheckTime, when set, is how often etcd's own monitor ends a
	// downgrade job once every member runs the target version (default 5s).
	DowngradeCheckTime time.Duration
	StopTimeout        time.Duration
	Logger             *slog.Logger
	// InsecurePlainHTTP serves ClientURL as given, without the private TLS and
	// client-certificate auth: open to every local process. Only for the test
	// harnesses (internal/etcdtest, internal/fixture), whose tests reach the etcd
	// with their own clients and whose fixtures record the member's http client URL;
	// migrate never sets it.
	InsecurePlainHTTP bool

	// tls is the private client listener's TLS, made by Start.
	tls *privateTLS
	// user overrides stepUser as the client certificate's CN (tests).
	user string
}

// URL is the private client URL the step's etcd serves: ClientURL's host and port,
// over TLS once Start has made the listener's certificates (whatever scheme
// LISTEN_CLIENT_URLS names: the listener is the step's alone).
func (c Config) URL() string {
	if c.tls == nil {
		return c.ClientURL
	}
	u, err := url.Parse(c.ClientURL)
	if err != nil {
		return c.ClientURL
	}
	u.Scheme = "https"
	return u.String()
}

// SingleMember reports whether the initial cluster names one member only: then
// raft timing can be shortened without affecting anybody else.
func (c Config) SingleMember() bool {
	return !c.MultiMember && c.InitialCluster != "" && !strings.Contains(c.InitialCluster, ",")
}

// PeerListenURLs is where the step's etcd listens for peers: loopback for a lone
// member (LoopbackURLs), as given for a member of several.
func (m Member) PeerListenURLs() string {
	if m.MultiMember {
		return m.ListenPeerURLs
	}
	return LoopbackURLs(m.ListenPeerURLs)
}

// Args is the etcd command line for c (without the binary).
func (c Config) Args() []string {
	args := []string{
		"--name=" + c.Name,
		"--data-dir=" + c.DataDir,
		"--listen-client-urls=" + c.URL(),
		"--advertise-client-urls=" + c.URL(),
		"--listen-peer-urls=" + c.PeerListenURLs(),
		"--initial-advertise-peer-urls=" + c.InitialAdvertisePeerURLs,
		"--initial-cluster=" + c.InitialCluster,
	}
	if c.SnapshotCount > 0 {
		args = append(args, fmt.Sprintf("--snapshot-count=%d", c.SnapshotCount))
	}
	if c.SingleMember() {
		// A lone member elects itself after one election timeout; etcd's 1s default
		// would be most of a step's cost.
		args = append(args, "--heartbeat-interval=10", "--election-timeout=100")
	} else {
		args = append(args, c.RaftArgs...)
	}
	caps := etcdversion.For(c.Version)
	if caps.ZapLoggerFlag {
		// etcd 3.4 logs through capnslog unless told otherwise; zap gives one JSON
		// object per line like 3.5+.
		args = append(args, "--logger=zap", "--log-outputs=stderr")
	}
	if c.WALDir != "" {
		args = append(args, "--wal-dir="+c.WALDir)
	}
	if c.EnableV2 && !caps.V2WithoutFlag {
		args = append(args, "--enable-v2=true")
	}
	// etcd 3.4 has no downgrade monitor.
	if flag := caps.DowngradeCheckTimeFlag; c.DowngradeCheckTime > 0 && flag != "" {
		args = append(args, flag+"="+c.DowngradeCheckTime.String())
	}
	if c.QuotaBackendBytes > 0 && c.Version.Segments()[0] >= 3 {
		args = append(args, fmt.Sprintf("--quota-backend-bytes=%d", c.QuotaBackendBytes))
	}
	args = append(args, c.ExtraArgs...)
	if c.tls != nil {
		// Last: nothing in ExtraArgs may replace the private listener's TLS.
		args = append(args, c.tls.args()...)
	}
	return args
}

// LoopbackURLs rewrites a comma-separated list of listen URLs so that each binds a
// loopback address: a non-loopback host (0.0.0.0, a pod or host IP, a name) becomes
// 127.0.0.1, scheme and port kept. The steps' etcd is a private single member that
// no peer ever dials, so its peer listener needs no outside address; the URLs the
// member advertises live in the data and are not changed. Unparsable URLs are left
// for the caller to reject.
func LoopbackURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, raw := range parts {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			continue
		}
		if h := u.Hostname(); h == "localhost" || isLoopbackIP(h) {
			continue
		}
		u.Host = net.JoinHostPort("127.0.0.1", u.Port())
		if u.Port() == "" {
			u.Host = "127.0.0.1"
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

func isLoopbackIP(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Process is a running etcd child.
type Process struct {
	cfg    Config
	http   *http.Client // for GET /version, with the step's client certificate
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // set before done is closed
	logs   *tail
	stdout sync.WaitGroup
	// downgraded: etcd logged that its monitor ended the downgrade job.
	downgraded atomic.Bool
	// memberID is this etcd's member ID once a status asked for it.
	memberID uint64
}

// Start launches the etcd binary. The child dies with us (SIGKILL on parent death on
// Linux) so a killed migrate never leaves a stray etcd holding the data dir.
func Start(cfg Config) (_ *Process, err error) {
	user := stepUser
	if cfg.user != "" {
		user = cfg.user
	}
	if !cfg.InsecurePlainHTTP {
		if cfg.tls, err = newPrivateTLS(user, filepath.Dir(filepath.Clean(cfg.DataDir))); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			cfg.tls.remove()
		}
	}()
	cmd := exec.Command(cfg.Binary, cfg.Args()...)
	cmd.Env = ChildEnv()
	DiesWithMigrate(cmd)
	p := &Process{cfg: cfg, cmd: cmd, done: make(chan struct{}), logs: newTail(50),
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.tls.clientConfig()}}}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Binary, err)
	}
	p.stdout.Add(2)
	go p.stream(stderr)
	go p.stream(stdout)
	go func() {
		p.stdout.Wait()
		p.err = cmd.Wait()
		p.http.CloseIdleConnections()
		cfg.tls.remove()
		close(p.done)
	}()
	return p, nil
}

// URL is the private client URL the process serves.
func (p *Process) URL() string { return p.cfg.URL() }

// ChildEnv is the environment of every etcd, etcdctl and etcdutl migrate starts
// (not the exec'd etcd): this one without ETCD_* and ETCDCTL_* variables, which
// they read as flags; the image's own settings (ETCD_NAME, ETCD_DATA_DIR, ...)
// must not change a private run, a check or a restore.
func ChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") && !strings.HasPrefix(kv, "ETCDCTL_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *Process) stream(r io.Reader) {
	defer p.stdout.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	source := "etcd-" + p.cfg.Version.String()
	for sc.Scan() {
		line := sc.Text()
		p.logs.add(line)
		if strings.Contains(line, "the cluster has been downgraded") {
			p.downgraded.Store(true)
		}
		p.cfg.Logger.Debug("etcd output", "source", source, "line", line)
	}
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// exitError describes an unexpected exit in one line, quoting the child's most
// telling log line; all its last lines go to our log at error level.
func (p *Process) exitError() error {
	lines := p.logs.lines()
	for _, l := range lines {
		p.cfg.Logger.Error("etcd output before exit", "source", "etcd-"+p.cfg.Version.String(), "line", l)
	}
	return fmt.Errorf("etcd %s exited early (%v): %s", p.cfg.Version, p.err, tellingLine(lines))
}

// tellingLine picks the last fatal/panic/error line (zap JSON or plain text), else
// the first non-blank line, shortened for an error message.
func tellingLine(lines []string) string {
	pick := ""
	for _, l := range lines {
		ll := strings.ToLower(l)
		if strings.Contains(ll, `"level":"fatal"`) || strings.Contains(ll, `"level":"panic"`) ||
			strings.Contains(ll, `"level":"error"`) || strings.HasPrefix(ll, "panic:") || strings.Contains(ll, "error") {
			pick = l
		}
	}
	if pick == "" {
		for _, l := range lines {
			if strings.TrimSpace(l) != "" {
				pick = l
				break
			}
		}
	}
	pick = strings.TrimSpace(pick)
	if len(pick) > 600 {
		pick = pick[:600] + "..."
	}
	if pick == "" {
		return "no output"
	}
	return "last error line: " + pick
}

// killWait bounds the wait for a SIGKILLed child to be reaped and its output
// pipes to close.
const killWait = 10 * time.Second

// Stop sends SIGTERM, waits up to StopTimeout, then SIGKILLs the child's process
// group (anything it started dies with it and cannot keep its output pipes open).
// It reports whether the child had to be killed; a graceful exit is the normal
// case. It never waits longer than StopTimeout plus killWait.
func (p *Process) Stop() (killed bool, err error) {
	select {
	case <-p.done:
		return false, nil
	default:
	}
	// etcd's graceful shutdown waits up to its request timeout (5 s and two
	// election timeouts) for every client connection to go idle, and a TLS
	// connection on which no request was sent yet (one the HTTP transport dialed
	// and parked) never does: close ours first.
	p.http.CloseIdleConnections()
	if err := terminate(p.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return false, fmt.Errorf("stop etcd %s (pid %d): %w", p.cfg.Version, p.Pid(), err)
	}
	t := time.NewTimer(p.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return false, nil
	case <-t.C:
	}
	p.cfg.Logger.Warn("etcd did not stop within the stop timeout: killing it", "etcd", p.cfg.Version.String(), "pid", p.Pid(), "stop_timeout", p.cfg.StopTimeout.String())
	kill(p.cmd.Process)
	select {
	case <-p.done:
		return true, nil
	case <-time.After(killWait):
		return true, fmt.Errorf("etcd %s (pid %d) was killed after not stopping within %s, but its output did not end within %s more", p.cfg.Version, p.Pid(), p.cfg.StopTimeout, killWait)
	}
}

// sleepOrDone waits d, or returns an error if ctx ends or the child exits first.
func (p *Process) sleepOrDone(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return p.exitError()
	case <-t.C:
		return nil
	}
}

type tail struct {
	mu  sync.Mutex
	max int
	buf []string
}

func newTail(n int) *tail { return &tail{max: n} }

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, s)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.buf...)
}

// Version is the version of the etcd binary this process runs.
func (p *Process) Version() *version.Version { return p.cfg.Version }
