package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/backup"
	"github.com/etcd-migrate/etcd-migrate/pkg/diskspace"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// failingEtcd is a bin dir whose etcd-<v> answers --version as the real one (so
// preflight accepts it) and otherwise exits 3 at once, as an etcd that refuses to
// start does: a step at v fails for real, after the steps before it ran.
func failingEtcd(t *testing.T, binDir, v string) string {
	t.Helper()
	return fakeBinDir(t, binDir, func(dir string) {
		real := filepath.Join(binDir, "etcd-"+v)
		os.Remove(filepath.Join(dir, "etcd-"+v))
		script := fmt.Sprintf("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --version ] && exec %q \"$@\"; done\necho 'injected failure: etcd-%s refuses to start' >&2\nexit 3\n", real, v)
		if err := os.WriteFile(filepath.Join(dir, "etcd-"+v), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	})
}

func readRecord(t *testing.T, dataDir string) backup.Record {
	t.Helper()
	b, err := os.ReadFile(backup.RecordPath(dataDir))
	if err != nil {
		t.Fatalf("backup record: %v", err)
	}
	var r backup.Record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("backup record %s: %v", b, err)
	}
	return r
}

// TestBackupSurvivesRetries: a walk of the 3.4.13 fixture to 3.7.3 fails three
// times in a row — killed while the 3.5 step's etcd had already moved the
// cluster version (data changed, nothing recorded), then twice with etcd 3.6.16
// refusing to start (the second of those after the 3.5 step completed) — and the
// fourth run succeeds. The backup taken before the first run stays the
// pre-migration data byte for byte throughout; the retries copy nothing; the
// completed migration is recorded; its manual restore (docs/backups-and-failures.md) serves with
// etcd 3.4.13; and the next migration replaces it with its own pre-migration copy.
func TestBackupSurvivesRetries(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	dataDir := etcdtest.CopyDir(t, pristine)
	bak := backup.Path(dataDir)
	before := etcdtest.Checksum(t, dataDir)
	fail36 := failingEtcd(t, binDir, "3.6.16")
	walk := []string{"--target-version=3.7.3", "--exec=false"}

	assertBackup := func(what string, r result) {
		t.Helper()
		if got := etcdtest.Checksum(t, bak); got != before {
			t.Fatalf("%s: the backup is no longer the pre-migration data\n%s", what, tailLines(r.stderr, 20))
		}
		rec := readRecord(t, dataDir)
		if rec.Before != "3.4.13/etcd3" || rec.Target != "3.7.3/etcd3" || rec.Completed {
			t.Fatalf("%s: backup record %+v, want the pending migration 3.4.13/etcd3 -> 3.7.3/etcd3", what, rec)
		}
	}

	// 1: killed (SIGKILL) once etcd 3.5.35 has taken the data over and saved its
	// snapshot, before the step is recorded.
	r := runMigrate(t, binDir, dataDir, []string{fault.Env + "=" + fault.StepBeforeStop}, walk...)
	if r.code == 0 || !strings.Contains(r.stderr, `msg="backup written"`) {
		t.Fatalf("run 1: exit %d, want a kill after the backup\n%s", r.code, r.stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
		t.Fatalf("run 1: version.txt %q", got)
	}
	assertBackup("run 1 (killed in step 1)", r)

	// 2 and 3: etcd 3.6.16 refuses to start. Run 2 first completes the 3.5 step.
	for i, recorded := range []string{"3.5.35/etcd3", "3.5.35/etcd3"} {
		r := runMigrate(t, binDir, dataDir, nil, append([]string{"--bin-dir=" + fail36}, walk...)...)
		line := errorLine(t, r)
		want := fmt.Sprintf("failed (version.txt records %s; the data as it was before this migration (3.4.13/etcd3) is in %s; rerun to retry it)", recorded, bak)
		if r.code != 1 || !strings.Contains(line, want) || !strings.Contains(line, "injected failure: etcd-3.6.16 refuses to start") {
			t.Fatalf("run %d: exit %d, %s\nwant it to contain %q", i+2, r.code, line, want)
		}
		if strings.Contains(r.stderr, `msg="backup written"`) || !strings.Contains(r.stderr, `msg="backup kept"`) {
			t.Fatalf("run %d: the retry copied the data again:\n%s", i+2, r.stderr)
		}
		assertBackup(fmt.Sprintf("run %d (etcd 3.6.16 fails)", i+2), r)
		if got := readVersionTxt(t, dataDir); got != recorded+"\n" {
			t.Fatalf("run %d: version.txt %q", i+2, got)
		}
	}

	// 4: the good run.
	r = runMigrate(t, binDir, dataDir, nil, walk...)
	if r.code != 0 {
		t.Fatalf("run 4: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, `msg="backup written"`) || !strings.Contains(r.stderr, "backup kept as the copy before the completed migration") {
		t.Fatalf("run 4: backup log lines:\n%s", r.stderr)
	}
	if got := etcdtest.Checksum(t, bak); got != before {
		t.Fatal("after the good run the backup is no longer the pre-migration data")
	}
	rec := readRecord(t, dataDir)
	if rec.Before != "3.4.13/etcd3" || !rec.Completed || rec.CompletedAt != "3.7.3/etcd3" {
		t.Fatalf("after the good run: backup record %+v", rec)
	}
	st := runMigrate(t, binDir, dataDir, nil, "status")
	for _, w := range []string{
		"backup:      " + bak + " (version.txt 3.4.13/etcd3)",
		"backup of:   the data at 3.4.13/etcd3 before the migration to 3.7.3/etcd3, taken ",
		"; completed at 3.7.3/etcd3: the next migration replaces it",
	} {
		if !strings.Contains(st.stdout, w) {
			t.Fatalf("status does not say %q:\n%s", w, st.stdout)
		}
	}
	t.Logf("status:\n%s", st.stdout)

	// The manual restore (docs/backups-and-failures.md): move the data aside, copy the backup back, start
	// the version its version.txt names.
	failed := dataDir + ".failed"
	if err := os.Rename(dataDir, failed); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", bak, dataDir).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	if got := readVersionTxt(t, dataDir); got != "3.4.13/etcd3\n" {
		t.Fatalf("restored version.txt %q", got)
	}
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
	if r.code != 0 || !strings.Contains(r.stderr, "steps=0") {
		t.Fatalf("run on the restored data: exit %d\n%s", r.code, r.stderr)
	}
	if !etcdtest.Serves(t, binDir, "3.4.13", dataDir) {
		t.Fatal("etcd 3.4.13 does not serve the restored backup")
	}
	os.RemoveAll(failed)

	// The next migration replaces the completed migration's copy with its own.
	os.WriteFile(filepath.Join(dataDir, "marker-of-the-restored-data"), []byte("x"), 0o600)
	restored := etcdtest.Checksum(t, dataDir)
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false")
	if r.code != 0 || !strings.Contains(r.stderr, `msg="backup written"`) {
		t.Fatalf("next migration: exit %d, no new backup\n%s", r.code, r.stderr)
	}
	if etcdtest.Checksum(t, bak) != restored {
		t.Fatal("the next migration's backup is not its pre-migration data")
	}
	if rec := readRecord(t, dataDir); rec.Before != "3.4.13/etcd3" || rec.Target != "3.5.35/etcd3" || !rec.Completed {
		t.Fatalf("next migration: record %+v", rec)
	}
}

// TestBackupStaleTempRemoved: a copy killed before it was renamed into place
// leaves <data-dir>.bak.tmp-*; the next run removes it (under the lock, at start,
// even when it has nothing to migrate) and takes its backup anew.
func TestBackupStaleTempRemoved(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	dataDir := etcdtest.CopyDir(t, pristine)
	before := etcdtest.Checksum(t, dataDir)
	r := runMigrate(t, binDir, dataDir, []string{fault.Env + "=" + fault.BackupAfterCopy}, "--target-version=3.5.35", "--exec=false")
	if r.code == 0 {
		t.Fatalf("the kill at %s did not happen\n%s", fault.BackupAfterCopy, r.stderr)
	}
	left, _ := filepath.Glob(backup.Path(dataDir) + ".tmp-*")
	if len(left) != 1 {
		t.Fatalf("after a kill during the copy: temp copies %v, want one", left)
	}
	if st := runMigrate(t, binDir, dataDir, nil, "status"); !strings.Contains(st.stdout, "backup temp: "+left[0]+" left by an interrupted copy") {
		t.Fatalf("status does not show the stale copy:\n%s", st.stdout)
	}
	// A run with nothing to do cleans up as well.
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.4.13", "--exec=false")
	if r.code != 0 || !strings.Contains(r.stderr, "removed what an interrupted backup left") || !strings.Contains(r.stderr, left[0]) {
		t.Fatalf("no-op run: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Lstat(left[0]); err == nil {
		t.Fatalf("%s is still there", left[0])
	}
	if etcdtest.Checksum(t, dataDir) != before {
		t.Fatal("the data changed")
	}
	// Killed again, then a full run: no temp copy is left, the backup is whole.
	runMigrate(t, binDir, dataDir, []string{fault.Env + "=" + fault.BackupAfterCopy}, "--target-version=3.5.35", "--exec=false")
	r = runMigrate(t, binDir, dataDir, nil, "--target-version=3.5.35", "--exec=false")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if left, _ := filepath.Glob(backup.Path(dataDir) + ".tmp-*"); len(left) != 0 {
		t.Fatalf("temp copies left: %v", left)
	}
	if etcdtest.Checksum(t, backup.Path(dataDir)) != before {
		t.Fatal("the backup is not the data before the run")
	}
}

// TestBackupDiskSpace: the disk-space preflight counts a new backup and nothing for
// a kept one. On a size-limited tmpfs filled so that the steps fit but a second
// copy of the data does not, a retry that keeps the pending backup passes the
// check (its step then fails for its own reason), and the same run without a
// pending backup is refused up front, the data unchanged.
func TestBackupDiskSpace(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	fsDir := mountTmpfs(t, 256)
	dataDir := filepath.Join(fsDir, "data")
	if out, err := exec.Command("cp", "-a", pristine, dataDir).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	fail35 := failingEtcd(t, binDir, "3.5.35")
	args := []string{"--bin-dir=" + fail35, "--target-version=3.7.3", "--exec=false"}
	r := runMigrate(t, binDir, dataDir, nil, args...)
	if r.code != 1 || !strings.Contains(r.stderr, `msg="backup written"`) {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	size := allocated(t, dataDir)
	// Free space: the steps' need (a WAL segment and a quarter of the data) plus
	// half the data: enough without a new backup, not with one.
	target := int64(steprun.StepSpace) + size/4 + size/2
	free, _ := diskspace.Free(fsDir)
	if free < target {
		t.Fatalf("tmpfs too small: %d free, want %d", free, target)
	}
	f, err := os.Create(filepath.Join(fsDir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 0xa5
	}
	for left := free - target; left > 0; left -= int64(len(buf)) {
		n := min(int64(len(buf)), left)
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	free, _ = diskspace.Free(fsDir)
	t.Logf("data %d KiB allocated; free after filling %d KiB (steps need %d KiB, a new backup %d KiB more)", size>>10, free>>10, (int64(steprun.StepSpace)+size/4)>>10, size>>10)

	r = runMigrate(t, binDir, dataDir, nil, args...)
	if line := errorLine(t, r); r.code != 1 || !strings.Contains(line, "injected failure: etcd-3.5.35 refuses to start") || !strings.Contains(r.stderr, `msg="backup kept"`) {
		t.Fatalf("retry with a kept backup: exit %d, %s", r.code, line)
	}

	// Without a pending backup the same run needs a new copy, which does not fit.
	if err := os.Remove(backup.RecordPath(dataDir)); err != nil {
		t.Fatal(err)
	}
	sum := etcdtest.Checksum(t, dataDir)
	r = runMigrate(t, binDir, dataDir, nil, args...)
	want := fmt.Sprintf("not enough disk space in %s: the steps need about", dataDir)
	if line := errorLine(t, r); r.code != 2 || !strings.Contains(line, want) {
		t.Fatalf("without a pending backup: exit %d, %s\nwant it to contain %q", r.code, line, want)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("the refused run changed the data")
	}
}

// allocated is the disk space dir's files take (as the preflight counts it).
func allocated(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += diskspace.Allocated(fi)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}
