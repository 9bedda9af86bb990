package datadir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNewestSnapshotIndex(t *testing.T) {
	dir := t.TempDir()
	if idx, err := NewestSnapshotIndex(dir); err != nil || idx != 0 {
		t.Fatalf("no snap dir: %d, %v", idx, err)
	}
	snap := SnapDir(dir)
	os.MkdirAll(snap, 0o700)
	for _, n := range []string{"0000000000000002-00000000000003ea.snap", "0000000000000002-0000000000000bbe.snap", "0000000000000003-00000000000009c9.snap", "db", "junk.snap", "0000000000000004-zz.snap"} {
		os.WriteFile(filepath.Join(snap, n), nil, 0o600)
	}
	if idx, err := NewestSnapshotIndex(dir); err != nil || idx != 0xbbe {
		t.Fatalf("newest = %#x, %v; want 0xbbe", idx, err)
	}
}
