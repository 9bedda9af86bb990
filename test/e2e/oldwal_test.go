//go:build oldetcd

package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/legacywal"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// TestOldReleasesReadTheWALWritten proves the member dir migrate writes for an
// etcd2 target against the real 2.2.5 and 3.0.17, one fix at a time. The member dir
// as etcd's packages write it (the WAL padded to 8 bytes, with a preallocated zero
// tail; a bbolt db without a written freelist) makes both exit with a panic, while
// 3.1.20 serves it. 2.2.5 panics on the padded frames; unpadding them alone is not
// enough (it reads the zero tail as a record: "crc mismatch") unless the file also
// ends at its last record, which legacywal.Unpad does. 3.0.17 reads padded frames
// (its decoder has the padding flag) and panics in bolt on the db until its
// freelist is written. After memberdir.Fit, each serves every key.
func TestOldReleasesReadTheWALWritten(t *testing.T) {
	binDir := oldBinDir(t, "2.2.5")
	port := fixture.PortPair(t)
	peer := fmt.Sprintf("http://127.0.0.1:%d", port+1)
	dataDir := etcdtest.CopyDir(t, etcdtest.ExtractFixture(t, fixture34))
	res, err := rollback.Convert(rollback.Options{
		DataDir: dataDir, Target: versionfile.MustPair("3.1.20/etcd2"), Name: "etcd-member",
		PeerURLs: []string{peer}, InitialCluster: "etcd-member=" + peer, Prefix: "/registry",
		Now: time.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	panics := func(v, dir, want string) {
		t.Helper()
		s, err := fixture.StartOld(binDir, v, dir, port, 0)
		if err == nil {
			s.Stop()
			t.Fatalf("etcd %s served a member dir it should not read (%s)", v, want)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("etcd %s: want an exit with %q, got: %v", v, want, err)
		}
		t.Logf("etcd %s: %s", v, firstLine(err.Error(), want))
	}
	serves := func(v, dir string) {
		t.Helper()
		s, err := fixture.StartOld(binDir, v, dir, port, 0)
		if err != nil {
			t.Fatalf("etcd %s: %v", v, err)
		}
		defer s.Stop()
		n := 0
		for _, node := range etcdtest.DumpV2(t, s.URL) {
			if !node.Dir {
				n++
			}
		}
		if n != res.Keys || n < 100 {
			t.Fatalf("etcd %s serves %d v2 keys, the conversion wrote %d", v, n, res.Keys)
		}
		t.Logf("etcd %s serves the member dir: %d v2 keys", v, n)
	}

	// As etcd's packages write it.
	for _, v := range []string{"2.2.5", "3.0.17"} {
		panics(v, etcdtest.CopyDir(t, dataDir), "panic:")
	}
	// Unpadded frames, the zero tail kept: 2.2.5 reads the zeros as a record.
	padded := etcdtest.CopyDir(t, dataDir)
	tailKept := unpadKeepTail(t, datadir.WALDir(padded))
	panics("2.2.5", tailKept, "crc mismatch")
	// Unpadded and ending at the last record: 2.2.5 serves it; 3.0.17 needs the
	// freelist.
	unpadded := etcdtest.CopyDir(t, dataDir)
	if _, err := legacywal.Unpad(datadir.WALDir(unpadded)); err != nil {
		t.Fatal(err)
	}
	serves("2.2.5", etcdtest.CopyDir(t, unpadded))
	panics("3.0.17", etcdtest.CopyDir(t, unpadded), "bolt")
	// The freelist written, the WAL padded: 3.0.17 serves it.
	freelist := etcdtest.CopyDir(t, dataDir)
	db, err := bolt.Open(datadir.BackendPath(freelist), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	serves("3.0.17", freelist)
	for _, v := range []string{"2.2.5", "3.0.17"} {
		dir := etcdtest.CopyDir(t, dataDir)
		if err := memberdir.Fit(dir, versionfile.MustVersion(v)); err != nil {
			t.Fatal(err)
		}
		serves(v, dir)
	}
	serves("3.1.20", dataDir)
}

// unpadKeepTail is Unpad without its cut: the frames rewritten in place, the
// zero-filled rest of the file kept.
func unpadKeepTail(t *testing.T, walDir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if len(files) != 1 {
		t.Fatalf("%s: %d WAL files, want 1", walDir, len(files))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	if _, err := legacywal.Frames(strings.NewReader(string(b)), func(rec []byte) {
		out = append(out, byte(len(rec)), byte(len(rec)>>8), byte(len(rec)>>16), byte(len(rec)>>24), 0, 0, 0, 0)
		out = append(out, rec...)
	}); err != nil {
		t.Fatal(err)
	}
	out = append(out, make([]byte, len(b)-len(out))...)
	if err := os.WriteFile(files[0], out, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(walDir))
}

// firstLine is the first line of s that holds want.
func firstLine(s, want string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, want) {
			return l
		}
	}
	return ""
}
