// Package etcdtest holds test helpers that work with real etcd binaries and data
// dirs: unpack fixtures, checksum a dir, serve a data dir, dump its keyspace.
package etcdtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
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

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is an etcd serving a data dir for a test.
type Server struct {
	Cmd       *exec.Cmd
	ClientURL string
	Client    *clientv3.Client
	Log       *strings.Builder
}

// Serve starts etcd-<version> on dataDir with free ports and a connected client; it
// is stopped at test cleanup.
func Serve(t testing.TB, binDir, version, dataDir string) *Server {
	t.Helper()
	return serve(t, binDir, version, dataDir)
}

// ServeAs is Serve for auth-enabled data: the client (and the readiness read) uses
// user and password.
func ServeAs(t testing.TB, binDir, version, dataDir, user, password string) *Server {
	t.Helper()
	return serveWith(t, binDir, version, dataDir, clientv3.Config{Username: user, Password: password})
}

// ServeArgs is Serve with extra etcd flags (e.g. --wal-dir).
func ServeArgs(t testing.TB, binDir, version, dataDir string, extra ...string) *Server {
	t.Helper()
	return serve(t, binDir, version, dataDir, extra...)
}

// serve is Serve with extra etcd flags.
func serve(t testing.TB, binDir, version, dataDir string, extra ...string) *Server {
	t.Helper()
	return serveWith(t, binDir, version, dataDir, clientv3.Config{}, extra...)
}

// serveWith is serve with the client's credentials in cc.
func serveWith(t testing.TB, binDir, version, dataDir string, cc clientv3.Config, extra ...string) *Server {
	t.Helper()
	port, peer := FreePort(t), FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{
		"--name=etcd-member", "--data-dir=" + dataDir,
		"--listen-client-urls=" + url, "--advertise-client-urls=" + url,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer),
		// Used only when dataDir is empty (a new member); existing data keeps its own.
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", peer),
		fmt.Sprintf("--initial-cluster=etcd-member=http://127.0.0.1:%d", peer),
		"--heartbeat-interval=10", "--election-timeout=100",
	}
	if strings.HasPrefix(version, "3.4.") {
		args = append(args, "--logger=zap")
	}
	args = append(args, extra...)
	cmd := exec.Command(filepath.Join(binDir, "etcd-"+version), args...)
	logs := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Cmd: cmd, ClientURL: url, Log: logs}
	t.Cleanup(func() { s.Stop() })
	cc.Endpoints, cc.DialTimeout, cc.Logger = []string{url}, 5*time.Second, zap.NewNop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// A client with credentials authenticates while it connects, so it can
		// fail until etcd answers.
		if s.Client == nil {
			c, err := clientv3.New(cc)
			if err != nil && (cc.Username == "" || time.Now().After(deadline)) {
				t.Fatal(err)
			}
			s.Client = c
		}
		err := errors.New("no client yet")
		if s.Client != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = s.Client.Get(ctx, "health-check-read")
			cancel()
		}
		if err == nil {
			return s
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("etcd %s on %s not ready: %v\n%s", version, dataDir, err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server gracefully.
func (s *Server) Stop() {
	if s.Client != nil {
		s.Client.Close()
		s.Client = nil
	}
	if s.Cmd.Process != nil && s.Cmd.ProcessState == nil {
		_ = s.Cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = s.Cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.Cmd.Process.Kill()
			<-done
		}
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
}

// DumpAll reads every key and lease of the server.
func (s *Server) DumpAll(t testing.TB) Dump {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Client.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	d := Dump{Revision: resp.Header.Revision, Keys: map[string]KV{}, Leases: map[int64][]string{}, LeaseTTL: map[int64]int64{}}
	for _, kv := range resp.Kvs {
		d.Keys[string(kv.Key)] = KV{Value: string(kv.Value), CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
	}
	ls, err := s.Client.Leases(ctx)
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	for _, l := range ls.Leases {
		ttl, err := s.Client.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
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
	port, peer := FreePort(t), FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"--name=etcd-member", "--data-dir=" + CopyDir(t, dataDir),
		"--listen-client-urls=" + url, "--advertise-client-urls=" + url,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer)}
	cmd := exec.Command(filepath.Join(binDir, "etcd-"+version), args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if resp, err := hc.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
