// Package etcdtest holds test helpers that work with real etcd binaries and data
// dirs: unpack fixtures, checksum a dir, serve a data dir, dump its keyspace.
package etcdtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// RepoRoot is the repository root (this file lives in internal/etcdtest).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BinDir is where `make build etcd-binaries` put migrate and the etcd binaries
// (ETCD_MIGRATE_BIN_DIR overrides). A missing binary fails the test: these tests
// must run against the real binaries, never silently skip.
func BinDir(t testing.TB) string {
	dir := os.Getenv("ETCD_MIGRATE_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "_output", "bin")
	}
	for _, b := range []string{"migrate", "etcd-3.4.13", "etcd-3.5.35", "etcd-3.6.16", "etcd-3.7.3"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s missing in %s: run `make build etcd-binaries` first (or use `make test`)", b, dir)
		}
	}
	return dir
}

// Bundled is the bundle the tests run with.
const Bundled = "3.4.13,3.5.35,3.6.16,3.7.3"

// ExtractFixture unpacks testdata/<name> (a .tar.gz of a data dir) into a new dir
// and returns its path.
func ExtractFixture(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-xzf", filepath.Join(RepoRoot(), "testdata", name), "-C", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("extract %s: %v: %s", name, err, out)
	}
	return dir
}

// Checksum hashes every path, mode and file content under dir: equal checksums mean
// the dir is byte-for-byte unchanged.
func Checksum(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s\x00%v\x00%d\x00", rel, info.Mode(), info.Size())
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("checksum %s: %v", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Server is an etcd serving a data dir for a test: a pkg/etcdproc process, as
// migrate runs its steps' etcd, but on a plain-HTTP loopback listener so that tests
// reach it with their own clients (anonymous, with a password, or plain HTTP).
type Server struct {
	Proc      *etcdproc.Process
	ClientURL string
	Client    *clientv3.Client
	// Log is etcd's output and etcdproc's messages about it.
	Log *SyncBuffer
}

// Serve starts etcd-<version> on dataDir with free ports and a connected client; it
// is stopped at test cleanup.
func Serve(t testing.TB, binDir, version, dataDir string) *Server {
	t.Helper()
	return serve(t, binDir, version, dataDir, clientv3.Config{}, false)
}

// ServeAs is Serve for auth-enabled data: the client (and the readiness read) uses
// user and password.
func ServeAs(t testing.TB, binDir, version, dataDir, user, password string) *Server {
	t.Helper()
	return serve(t, binDir, version, dataDir, clientv3.Config{Username: user, Password: password}, false)
}

// ServeArgs is Serve with extra etcd flags (e.g. --wal-dir).
func ServeArgs(t testing.TB, binDir, version, dataDir string, extra ...string) *Server {
	t.Helper()
	return serve(t, binDir, version, dataDir, clientv3.Config{}, false, extra...)
}

// member is the harness's single member on free loopback ports. The initial
// cluster applies only when dataDir is empty (a new member); existing data keeps
// its own.
func member(t testing.TB, extra []string) etcdproc.Member {
	peer := fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	return etcdproc.Member{Name: "etcd-member", ClientURL: fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		ListenPeerURLs: peer, InitialAdvertisePeerURLs: peer, InitialCluster: "etcd-member=" + peer, ExtraArgs: extra}
}

// start runs etcd-<version> on cfg's data through etcdproc.Start and waits, at
// most timeout, until it answers GET /version (etcd serves clients only once it
// has taken over the data); the error says why it did not. The server is stopped
// at test cleanup.
func start(t testing.TB, binDir, version string, cfg etcdproc.Config, timeout time.Duration) (*Server, error) {
	t.Helper()
	v, err := versionfile.ParseVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	log := &SyncBuffer{}
	cfg.Binary, cfg.Version, cfg.InsecurePlainHTTP = filepath.Join(binDir, "etcd-"+version), v, true
	cfg.StopTimeout = 10 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := etcdproc.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Proc: p, ClientURL: p.URL(), Log: log}
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = p.WaitMinor(ctx)
	return s, err
}

// serve is Serve with the client's credentials in cc, the v2 API on or off and
// extra etcd flags. Ready once a read through the client answers.
func serve(t testing.TB, binDir, version, dataDir string, cc clientv3.Config, enableV2 bool, extra ...string) *Server {
	t.Helper()
	s, err := start(t, binDir, version, etcdproc.Config{Member: member(t, extra), DataDir: dataDir, EnableV2: enableV2}, 20*time.Second)
	if err == nil {
		s.Client, err = connect(s.ClientURL, cc)
	}
	if err != nil {
		t.Fatalf("etcd %s on %s not ready: %v\n%s", version, dataDir, err, s.Log)
	}
	return s
}

// connect makes a client with cc's credentials and reads a key through it: ready
// for the test, not only for etcdproc.
func connect(url string, cc clientv3.Config) (*clientv3.Client, error) {
	cc.Endpoints, cc.DialTimeout, cc.Logger = []string{url}, 5*time.Second, zap.NewNop()
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "health-check-read"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Stop stops the server gracefully (etcdproc's stop: SIGTERM, SIGKILL after 10 s).
func (s *Server) Stop() {
	if s.Client != nil {
		s.Client.Close()
		s.Client = nil
	}
	if s.Proc != nil {
		_, _ = s.Proc.Stop()
	}
}

// KV is one key as a dump records it.
type KV struct {
	Value          string
	CreateRevision int64
	ModRevision    int64
	Version        int64
	Lease          int64
}

// Dump is a whole keyspace plus its leases.
type Dump struct {
	Revision int64
	Keys     map[string]KV
	// Leases maps lease ID to its sorted attached keys.
	Leases map[int64][]string
	// LeaseTTL maps lease ID to its granted TTL in seconds.
	LeaseTTL map[int64]int64
	// DoneLeases and BarrierLeases count the keyless leases of pkg/lockstep's
	// barrier a cluster dump left out of Leases ("walk done" ones, and the rest).
	DoneLeases, BarrierLeases int
}

// DumpAll reads every key and lease of the server.
func (s *Server) DumpAll(t testing.TB) Dump {
	t.Helper()
	return DumpClient(t, s.Client)
}

// DumpClient reads every key and lease through c; opts go to the range read
// (clientv3.WithSerializable() reads the answering member's own copy).
func DumpClient(t testing.TB, c *clientv3.Client, opts ...clientv3.OpOption) Dump {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "\x00", append([]clientv3.OpOption{clientv3.WithFromKey()}, opts...)...)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	d := Dump{Revision: resp.Header.Revision, Keys: map[string]KV{}, Leases: map[int64][]string{}, LeaseTTL: map[int64]int64{}}
	for _, kv := range resp.Kvs {
		d.Keys[string(kv.Key)] = KV{Value: string(kv.Value), CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
	}
	ls, err := c.Leases(ctx)
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	for _, l := range ls.Leases {
		ttl, err := c.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatalf("lease %x: %v", l.ID, err)
		}
		if ttl.TTL <= 0 {
			t.Fatalf("lease %x has TTL %d: expired", l.ID, ttl.TTL)
		}
		var keys []string
		for _, k := range ttl.Keys {
			keys = append(keys, string(k))
		}
		sort.Strings(keys)
		d.Leases[int64(l.ID)] = keys
		d.LeaseTTL[int64(l.ID)] = ttl.GrantedTTL
	}
	return d
}

// Compare reports every difference between want and got, at most max of them.
func Compare(want, got Dump, max int) []string {
	var diffs []string
	add := func(format string, a ...any) {
		if len(diffs) < max {
			diffs = append(diffs, fmt.Sprintf(format, a...))
		}
	}
	if want.Revision != got.Revision {
		add("store revision: want %d, got %d", want.Revision, got.Revision)
	}
	for k, w := range want.Keys {
		g, ok := got.Keys[k]
		switch {
		case !ok:
			add("key %q lost", k)
		case g != w:
			add("key %q: want create=%d mod=%d ver=%d lease=%x len=%d, got create=%d mod=%d ver=%d lease=%x len=%d (values equal: %v)",
				k, w.CreateRevision, w.ModRevision, w.Version, w.Lease, len(w.Value), g.CreateRevision, g.ModRevision, g.Version, g.Lease, len(g.Value), w.Value == g.Value)
		}
	}
	for k := range got.Keys {
		if _, ok := want.Keys[k]; !ok {
			add("key %q appeared", k)
		}
	}
	for id, wk := range want.Leases {
		gk, ok := got.Leases[id]
		if !ok {
			add("lease %x lost", id)
		} else if strings.Join(wk, ",") != strings.Join(gk, ",") {
			add("lease %x keys: want %d, got %d", id, len(wk), len(gk))
		}
	}
	for id := range got.Leases {
		if _, ok := want.Leases[id]; !ok {
			add("lease %x appeared", id)
		}
	}
	return diffs
}

// CopyDir copies a data dir (used to reuse one extracted fixture).
func CopyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	out, err := exec.Command("cp", "-a", "--sparse=always", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("copy %s: %v: %s", src, err, out)
	}
	return dst
}

// Serves says whether etcd-<version> starts on a copy of dataDir and answers a read
// within 15 s (false as soon as it exits).
func Serves(t testing.TB, binDir, version, dataDir string) bool {
	t.Helper()
	m := member(t, nil)
	// etcd's own defaults, as a bare `etcd` on this data runs: a dir without a
	// member fails to start instead of becoming a new cluster.
	m.InitialAdvertisePeerURLs, m.InitialCluster = "http://localhost:2380", "default=http://localhost:2380"
	s, err := start(t, binDir, version, etcdproc.Config{Member: m, DataDir: CopyDir(t, dataDir)}, 15*time.Second)
	defer s.Stop()
	if err == nil {
		s.Client, err = connect(s.ClientURL, clientv3.Config{})
	}
	if err != nil {
		t.Logf("etcd %s does not serve %s: %v", version, dataDir, err)
		return false
	}
	return true
}
