package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// listenAddrs maps socket inode -> local address of every TCP socket in LISTEN
// state (/proc/net/tcp and tcp6, state 0A).
func listenAddrs() map[string]string {
	out := map[string]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(l)
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			out[fs[9]] = decodeProcAddr(fs[1])
		}
	}
	return out
}

// decodeProcAddr turns /proc/net/tcp's "0100007F:1F90" (the address as host-order
// 32-bit words in hex, the port in hex) into "127.0.0.1:8080".
func decodeProcAddr(s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexIP)
	if err != nil || len(raw)%4 != 0 {
		return s
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	var port int
	fmt.Sscanf(hexPort, "%X", &port)
	return net.JoinHostPort(ip.String(), fmt.Sprint(port))
}

// socketInodes lists the socket inodes among pid's open files.
func socketInodes(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"))
		}
	}
	return out
}

// childListeners records, for every etcd child a migrate process starts, the
// addresses it was seen listening on.
type childListeners struct {
	mu     sync.Mutex
	comm   map[int]string
	listen map[int]map[string]bool
	stop   chan struct{}
	done   chan struct{}
}

func watchListeners(migratePid int) *childListeners {
	w := &childListeners{comm: map[int]string{}, listen: map[int]map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			for _, p := range processes() {
				if p.ppid != migratePid || !strings.HasPrefix(p.comm, "etcd-") {
					continue
				}
				// Only the steps' etcd: preflight's short `etcd-<v> --version` runs
				// serve nothing.
				cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
				if !strings.Contains(string(cl), "\x00--data-dir=") {
					continue
				}
				inodes := socketInodes(p.pid)
				if len(inodes) == 0 {
					continue
				}
				addrs := listenAddrs()
				w.mu.Lock()
				w.comm[p.pid] = p.comm
				if w.listen[p.pid] == nil {
					w.listen[p.pid] = map[string]bool{}
				}
				for _, ino := range inodes {
					if a, ok := addrs[ino]; ok {
						w.listen[p.pid][a] = true
					}
				}
				w.mu.Unlock()
			}
			time.Sleep(3 * time.Millisecond)
		}
	}()
	return w
}

func (w *childListeners) Stop() {
	close(w.stop)
	<-w.done
}

// TestPrivateEtcdListensOnLoopbackOnly reads the listening sockets of every step's
// etcd while it runs (/proc/<pid>/fd socket inodes matched against /proc/net/tcp
// and tcp6 in LISTEN state): all of them must be bound to loopback, also when
// LISTEN_PEER_URLS names every interface (a Kubernetes manifest may set a pod IP
// or 0.0.0.0 there).
func TestPrivateEtcdListensOnLoopbackOnly(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	for _, tc := range []struct {
		name     string
		peerHost string // LISTEN_PEER_URLS host; "" for the default
	}{
		{"default peer URL", ""},
		{"LISTEN_PEER_URLS on 0.0.0.0", "0.0.0.0"},
		{"LISTEN_PEER_URLS on [::]", "[::]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := etcdtest.CopyDir(t, pristine)
			var env []string
			peerPort := 0
			if tc.peerHost != "" {
				peerPort = etcdtest.FreePort(t)
				env = append(env, fmt.Sprintf("LISTEN_PEER_URLS=http://%s:%d", tc.peerHost, peerPort))
			}
			cmd := migrateCmd(t, binDir, dataDir, env, "--target-version=3.7.3", "--exec=false")
			var stderr etcdtest.SyncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w := watchListeners(cmd.Process.Pid)
			err := cmd.Wait()
			w.Stop()
			if err != nil {
				t.Fatalf("walk: %v\n%s", err, stderr.String())
			}
			clientPort := argValue(cmd.Args, "port")
			if peerPort == 0 {
				fmt.Sscan(argValue(cmd.Args, "peer-port"), &peerPort)
			}
			var seen []string
			for pid, addrs := range w.listen {
				var list []string
				hasClient, hasPeer := false, false
				for a := range addrs {
					list = append(list, a)
					host, port, _ := net.SplitHostPort(a)
					if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
						t.Errorf("%s (pid %d) listens on %s: not loopback", w.comm[pid], pid, a)
					}
					hasClient = hasClient || port == clientPort
					hasPeer = hasPeer || port == fmt.Sprint(peerPort)
				}
				sort.Strings(list)
				if !hasClient || !hasPeer {
					t.Errorf("%s (pid %d): saw %v, want its client port %s and peer port %d among them", w.comm[pid], pid, list, clientPort, peerPort)
				}
				seen = append(seen, fmt.Sprintf("%s %v", w.comm[pid], list))
			}
			sort.Strings(seen)
			if len(seen) != 3 {
				t.Fatalf("saw the listeners of %d step etcds, want 3 (3.5.35, 3.6.16, 3.7.3): %v", len(seen), seen)
			}
			t.Logf("listening sockets of the steps' etcd: %s", strings.Join(seen, "; "))
		})
	}
}

// modeWatch records the mode of every path under a directory seen while a run
// goes on, so temp files and work dirs that exist only for moments are checked
// too.
type modeWatch struct {
	mu    sync.Mutex
	root  string
	modes map[string]fs.FileMode
	stop  chan struct{}
	done  chan struct{}
}

func watchModes(root string) *modeWatch {
	w := &modeWatch{root: root, modes: map[string]fs.FileMode{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			w.scan()
			select {
			case <-w.stop:
				w.scan()
				return
			case <-time.After(3 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *modeWatch) scan() {
	_ = filepath.WalkDir(w.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == w.root {
			return nil // vanished while walking
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(w.root, path)
		w.mu.Lock()
		// Keep the widest mode seen.
		if old, ok := w.modes[rel]; !ok || info.Mode().Perm()&^old.Perm() != 0 {
			w.modes[rel] = info.Mode()
		}
		w.mu.Unlock()
		return nil
	})
}

func (w *modeWatch) Stop() map[string]fs.FileMode {
	close(w.stop)
	<-w.done
	return w.modes
}

// peerTLS writes a self-signed peer certificate and its key (0600) into a
// secret-looking dir and returns both paths and the key file's content.
func peerTLS(t *testing.T) (certFile, keyFile string, keyPEM []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secret-peer-tls")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd-member"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Text before the PEM block is ignored by parsers: a marker no log may show.
	keyPEM = append([]byte("s3cr3t-marker-"+hex.EncodeToString(kder[8:24])+"\n"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
	certFile, keyFile = filepath.Join(dir, "peer.crt"), filepath.Join(dir, "peer.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, keyPEM
}

// needles are the strings of values and secrets that no log may contain: each
// maximal run of at least 16 characters that no JSON or text log escapes (so an
// escaped copy cannot hide), minus runs that are part of a key name (keys may be
// named in logs; values may not).
func needles(values, keys []string) []string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" .:;,_/+=-", r)
	}
	seen := map[string]bool{}
	var out []string
	for _, v := range values {
		run := []rune{}
		flush := func() {
			s := strings.TrimSpace(string(run))
			run = run[:0]
			if len(s) < 16 || seen[s] {
				return
			}
			for _, k := range keys {
				if strings.Contains(k, s) {
					return
				}
			}
			seen[s] = true
			out = append(out, s)
		}
		for _, r := range v {
			if safe(r) {
				run = append(run, r)
				continue
			}
			flush()
		}
		flush()
	}
	return out
}

// TestNoSecretsInLogsAndPrivateFiles runs the etcd2 fixture through the v2->v3
// conversion up to 3.7.3 and then all the way back to 3.4.13 (downgrades and the
// snapshot-restore rollback), with JSON logs at debug level (which relay every
// line of the steps' etcd) and peer TLS files in ETCD_CREDS. Then:
//   - no key value of the data and nothing of the TLS key file appears in stdout
//     or stderr, and every log line is JSON;
//   - every directory migrate or the steps' etcd made next to or in the data dir
//     (the data dir, its backup, temp copies, work dirs) was 0700 whenever seen,
//     no file was group- or other-writable or executable, and the lock file and
//     migrate's own work files were 0600; only etcd's *.snap files and
//     version.txt may be readable by others (inside 0700 dirs);
//   - after the runs the backup is 0700 and version.txt 0644.
func TestNoSecretsInLogsAndPrivateFiles(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixtureEtcd2)
	v2 := v2Baseline(t, binDir, dataDir)
	var values, keys []string
	for k, n := range v2 {
		keys = append(keys, k)
		if !n.Dir {
			values = append(values, n.Value)
		}
	}
	certFile, keyFile, keyPEM := peerTLS(t)
	secretNeedles := needles([]string{string(keyPEM)}, nil)
	valueNeedles := needles(values, keys)
	if len(valueNeedles) < 100 || len(secretNeedles) < 3 {
		t.Fatalf("only %d value and %d secret needles: the fixture or the key changed", len(valueNeedles), len(secretNeedles))
	}
	creds := "ETCD_CREDS=--peer-cert-file " + certFile + " --peer-key-file=" + keyFile

	parent := filepath.Dir(dataDir)
	w := watchModes(parent)
	var out strings.Builder
	for _, target := range []string{"3.7.3", "3.4.13"} {
		r := runMigrate(t, binDir, dataDir, []string{creds}, "--target-version="+target, "--exec=false", "--log-format=json", "--log-level=debug")
		if r.code != 0 {
			w.Stop()
			t.Fatalf("to %s: exit %d\n%s", target, r.code, tailLines(r.stderr, 40))
		}
		out.WriteString(r.stdout)
		out.WriteString(r.stderr)
	}
	modes := w.Stop()
	log := out.String()

	// Logs: JSON only, and no value or secret in them.
	lines := 0
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		lines++
		if !json.Valid([]byte(l)) {
			t.Errorf("not a JSON log line: %.200s", l)
		}
	}
	if !strings.Contains(log, `"msg":"etcd output"`) || !strings.Contains(log, "peer.key") {
		t.Fatalf("the debug log does not relay the steps' etcd output (with its TLS settings); the checks below would prove nothing")
	}
	for _, n := range append(append([]string(nil), secretNeedles...), valueNeedles...) {
		if i := strings.Index(log, n); i >= 0 {
			lo, hi := max(0, i-200), min(len(log), i+len(n)+50)
			t.Errorf("the log shows %q:\n%s", n, log[lo:hi])
		}
	}

	// Modes of everything seen during the runs.
	var paths []string
	for p := range modes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dataName := filepath.Base(dataDir)
	// The private files (no read access but the owner's) the checks below must have
	// inspected, by kind: a test that saw none of them would pass on modes it
	// never looked at.
	wantPrivate := []struct {
		kind  string
		match func(p string) bool
		seen  int
	}{
		{kind: "etcd's backend " + dataName + "/member/snap/db", match: func(p string) bool { return p == filepath.Join(dataName, "member", "snap", "db") }},
		{kind: "a WAL segment " + dataName + "/member/wal/*.wal", match: func(p string) bool {
			return filepath.Dir(p) == filepath.Join(dataName, "member", "wal") && strings.HasSuffix(p, ".wal")
		}},
		{kind: "the backup's backend " + dataName + ".bak/member/snap/db", match: func(p string) bool { return p == filepath.Join(dataName+".bak", "member", "snap", "db") }},
		{kind: "migrate's backup record " + dataName + ".bak.json", match: func(p string) bool { return p == dataName+".bak.json" }},
		{kind: "a work file of the v2 -> v3 conversion or the rollback " + dataName + "/.migrate-*/* (outside member dirs)", match: func(p string) bool {
			return strings.HasPrefix(p, filepath.Join(dataName, ".migrate-")) && strings.Count(p, "/") == 2 && !strings.Contains(p, "/member") && !modes[p].IsDir()
		}},
	}
	private := 0
	for _, p := range paths {
		m := modes[p]
		base := filepath.Base(p)
		if !m.IsDir() && !strings.HasSuffix(base, ".snap") && base != "version.txt" && !strings.HasPrefix(base, ".version.txt.tmp-") {
			private++
			for i := range wantPrivate {
				if wantPrivate[i].match(p) {
					wantPrivate[i].seen++
				}
			}
		}
		switch {
		case !strings.HasPrefix(p, dataName) && !strings.HasPrefix(p, "."+dataName+".migrate.lock") && !strings.HasPrefix(p, "."+dataName+".bak.json.tmp-"):
			// not ours (another test's files cannot be here: the parent is a
			// fresh temp dir)
			t.Errorf("unexpected path %s (%v) beside the data dir", p, m)
		case m.IsDir():
			if m.Perm() != 0o700 {
				t.Errorf("dir %s was %v, want 0700", p, m.Perm())
			}
		case m.Perm()&0o133 != 0:
			t.Errorf("file %s was %v: writable by others or executable", p, m.Perm())
		case strings.HasSuffix(base, ".migrate.lock") || base == "target-version.txt" || base == "snapshot.db" || strings.Contains(p, ".migrate-") && !strings.Contains(p, "/member"):
			if m.Perm() != 0o600 {
				t.Errorf("migrate's file %s was %v, want 0600", p, m.Perm())
			}
		case m.Perm()&0o044 != 0 && !strings.HasSuffix(base, ".snap") && base != "version.txt" && !strings.HasPrefix(base, ".version.txt.tmp-"):
			t.Errorf("file %s was %v: readable by others", p, m.Perm())
		}
	}
	for _, c := range []struct {
		path string
		want fs.FileMode
	}{{dataDir + ".bak", 0o700}, {dataDir, 0o700}, {filepath.Join(dataDir, "version.txt"), 0o644}, {filepath.Join(dataDir+".bak", "version.txt"), 0o644}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.want {
			t.Errorf("%s is %v, want %v", c.path, fi.Mode().Perm(), c.want)
		}
	}
	var kinds []string
	for _, w := range wantPrivate {
		if w.seen == 0 {
			t.Errorf("no private file of this kind was inspected: %s", w.kind)
		}
		kinds = append(kinds, fmt.Sprintf("%d %s", w.seen, w.kind))
	}
	t.Logf("%d private files inspected, of them %s", private, strings.Join(kinds, "; "))
	var workSeen []string
	for _, p := range paths {
		if b := filepath.Base(p); strings.HasPrefix(b, ".migrate-") || strings.Contains(b, ".tmp-") || strings.HasSuffix(b, ".lock") || b == "snapshot.db" {
			workSeen = append(workSeen, fmt.Sprintf("%s %v", p, modes[p].Perm()))
		}
	}
	t.Logf("%d log lines, %d value and %d secret needles checked; %d paths seen, temp and work paths: %s", lines, len(valueNeedles), len(secretNeedles), len(paths), strings.Join(workSeen, ", "))
}
