package datadir

import (
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"

	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	stateEmpty = State{Empty: true}
	stateEtcd2 = State{Storage: versionfile.StorageEtcd2}
	// etcd 3.4 and older record neither version nor term.
	state34 = State{Storage: versionfile.StorageEtcd3}
	// A 3.4-style state as the brief describes it: cluster version, no term.
	state34CV = State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.4.0", HasV3Keys: true}
	state35   = State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.5.0", HasTerm: true, HasV3Keys: true}
	// 3.5 that has applied but not yet decided the cluster version.
	state35TermOnly = State{Storage: versionfile.StorageEtcd3, HasTerm: true}
	state36         = State{Storage: versionfile.StorageEtcd3, StorageVersion: "3.6.0", ClusterVersion: "3.6.0", HasTerm: true, HasV3Keys: true}
	state37         = State{Storage: versionfile.StorageEtcd3, StorageVersion: "3.7.0", ClusterVersion: "3.7.0", HasV3Keys: true}
)

func TestStateMinorFromData(t *testing.T) {
	tests := []struct {
		name      string
		s         State
		want      string
		wantKnown bool
	}{
		{"storage and cluster version", state37, "3.7", true},
		{"3.6", state36, "3.6", true},
		{"storage version wins over cluster version", State{Storage: versionfile.StorageEtcd3, StorageVersion: "3.7.0", ClusterVersion: "3.6.0"}, "3.7", true},
		{"cluster version only", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.5.0"}, "3.5", true},
		{"cluster version with term", state35, "3.5", true},
		{"cluster version 3.4 without term", state34CV, "3.4", true},
		{"term only", state35TermOnly, "3.5", true},
		{"the initial 3.0 of a new 3.5+ cluster", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.0.0", HasTerm: true}, "3.5", true},
		{"3.4 with the term a cut-short 3.5 step wrote", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.4.0", HasTerm: true}, "3.4", true},
		{"3.0 without term", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.0.0"}, "3.0", true},
		{"nothing", state34, "", false},
		{"unparsable storage version falls back to cluster version", State{StorageVersion: "junk", ClusterVersion: "3.5.0"}, "3.5", true},
		{"unparsable storage version falls back to term", State{StorageVersion: "3.6", HasTerm: true}, "3.5", true},
		{"unparsable versions, no term", State{StorageVersion: "3.6", ClusterVersion: "x"}, "", false},
		{"two-digit minor", State{StorageVersion: "3.10.0"}, "3.10", true},
		{"patch is dropped", State{ClusterVersion: "3.5.7"}, "3.5", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, known := tc.s.MinorFromData()
			if got != tc.want || known != tc.wantKnown {
				t.Errorf("MinorFromData() = %q, %v; want %q, %v", got, known, tc.want, tc.wantKnown)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		s    State
		want string
	}{
		{stateEmpty, "empty data dir"},
		{State{Empty: true, Storage: versionfile.StorageEtcd3, StorageVersion: "3.6.0"}, "empty data dir"},
		{stateEtcd2, "etcd2 data (WAL and v2 snapshots, no v3 backend)"},
		{state37, "etcd3 data (storage version 3.7.0, cluster version 3.7.0)"},
		{State{Storage: versionfile.StorageEtcd3, StorageVersion: "3.6.0"}, "etcd3 data (storage version 3.6.0)"},
		{state35, "etcd3 data (cluster version 3.5.0)"},
		{state35TermOnly, "etcd3 data (written by etcd 3.5)"},
		{state34, "etcd3 data (written by etcd 3.4 or older)"},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestStateCheckAgainst(t *testing.T) {
	const prefix = "version.txt says "
	const fix = "; fix version.txt to name the version that last wrote the data, or remove it to let migrate detect the state"
	fixFor := func(minor string) string {
		return "; fix version.txt to name the version that last wrote the data (an etcd " + minor + " release), or remove it to let migrate detect the state"
	}
	tests := []struct {
		name string
		s    State
		file string
		want []string // nil: accepted; else substrings of the error
	}{
		{"empty dir accepts anything", stateEmpty, "3.5.35/etcd3", nil},
		{"empty dir accepts etcd2", stateEmpty, "2.2.1/etcd2", nil},

		{"3.7 data, 3.7.3 file", state37, "3.7.3/etcd3", nil},
		{"3.7 data, 3.7.0 file", state37, "3.7.0/etcd3", nil},
		{"3.7 data one minor ahead of 3.6.16 file", state37, "3.6.16/etcd3", nil},
		{"3.7 data, 3.5.35 file", state37, "3.5.35/etcd3", []string{
			prefix + "3.5.35/etcd3 but the data is etcd3 data (storage version 3.7.0, cluster version 3.7.0): the data was written by a newer etcd than version.txt says" + fixFor("3.7"),
			"3.5.35/etcd3", "storage version 3.7.0",
		}},
		{"3.7 data one minor behind a 3.8.0 file (rollback cut short)", state37, "3.8.0/etcd3", nil},
		{"3.7 data, 3.9.0 file", state37, "3.9.0/etcd3", []string{
			prefix + "3.9.0/etcd3 but the data is etcd3 data (storage version 3.7.0, cluster version 3.7.0): the data records an older version than version.txt, beyond the one minor a rollback step cut short leaves" + fixFor("3.7"),
		}},
		{"3.7 data, 4.7.0 file", state37, "4.7.0/etcd3", []string{"the data records an older version than version.txt"}},
		{"3.7 data, 2.7.0/etcd2 file", state37, "2.7.0/etcd2", []string{"its v3 backend holds key revisions, so the data is etcd3"}},
		{"3.7 data without keys, 2.7.0/etcd2 file", State{Storage: versionfile.StorageEtcd3, StorageVersion: "3.7.0", ClusterVersion: "3.7.0"}, "2.7.0/etcd2", []string{"the data was written by a newer etcd than version.txt says"}},
		{"3.4 data with keys, 3.4.13/etcd2 file", state34CV, "3.4.13/etcd2", []string{
			prefix + "3.4.13/etcd2 but the data is etcd3 data (cluster version 3.4.0): its v3 backend holds key revisions, so the data is etcd3; fix version.txt to <version>/etcd3 naming the version that last wrote the data (an etcd 3.4 release), or remove it to let migrate detect the state",
		}},
		{"3.4 backend without keys (etcd2 served by 3.4), 3.4.13/etcd2 file", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.4.0"}, "3.4.13/etcd2", nil},

		{"3.6 data, 3.6.16 file", state36, "3.6.16/etcd3", nil},
		{"3.6 data one minor ahead of 3.5.35 file", state36, "3.5.35/etcd3", nil},
		{"3.6 data, 3.4.13 file", state36, "3.4.13/etcd3", []string{"3.4.13/etcd3", "storage version 3.6.0", "written by a newer etcd"}},
		{"3.6 data one minor behind a 3.7.3 file (rollback cut short)", state36, "3.7.3/etcd3", nil},
		{"3.6 data, 3.8.0 file", state36, "3.8.0/etcd3", []string{"3.8.0/etcd3", "storage version 3.6.0", "records an older version than version.txt"}},

		{"3.5 data, 3.5.35 file", state35, "3.5.35/etcd3", nil},
		{"3.5 data one minor ahead of 3.4.13 file", state35, "3.4.13/etcd3", nil},
		{"3.5 data, 3.3.0 file", state35, "3.3.0/etcd3", []string{"3.3.0/etcd3", "cluster version 3.5.0", "written by a newer etcd"}},
		{"3.5 data (no storage version) one minor behind a 3.6.16 file (rollback cut short)", state35, "3.6.16/etcd3", nil},
		// The cluster version proves the data older as well (3.4+ record it).
		{"3.5 data (no storage version), 3.7.3 file", state35, "3.7.3/etcd3", []string{"3.7.3/etcd3", "cluster version 3.5.0", "records an older version than version.txt"}},
		{"3.4 data, 3.6.16 file", state34CV, "3.6.16/etcd3", []string{
			prefix + "3.6.16/etcd3 but the data is etcd3 data (cluster version 3.4.0): the data records an older version than version.txt, beyond the one minor a rollback step cut short leaves" + fixFor("3.4"),
		}},
		{"3.4 data, 3.7.3 file", state34CV, "3.7.3/etcd3", []string{"3.7.3/etcd3", "cluster version 3.4.0", "records an older version"}},
		{"3.4 data one minor behind a 3.5.35 file (rollback cut short)", state34CV, "3.5.35/etcd3", nil},
		{"3.5 term only, 3.5.35 file", state35TermOnly, "3.5.35/etcd3", nil},
		{"3.5 term only, 3.4.13 file", state35TermOnly, "3.4.13/etcd3", nil},
		{"3.5 term only, 3.3.0 file", state35TermOnly, "3.3.0/etcd3", []string{"written by etcd 3.5", "written by a newer etcd"}},

		{"3.4-style state, 3.4.13 file", state34CV, "3.4.13/etcd3", nil},
		{"no-version state, 3.4.13 file", state34, "3.4.13/etcd3", nil},
		{"no-version state, 3.3.0 file", state34, "3.3.0/etcd3", nil},
		{"no-version state, 3.0.17/etcd2 file", state34, "3.0.17/etcd2", nil},
		{"no-version state, 3.5.35 file", state34, "3.5.35/etcd3", []string{
			prefix + "3.5.35/etcd3 but the data is etcd3 data (written by etcd 3.4 or older): an etcd 3.5 or newer would have recorded its term in the backend" + fix,
		}},
		{"no-version state, 3.7.3 file", state34, "3.7.3/etcd3", []string{"3.7.3/etcd3", "would have recorded its term"}},

		{"etcd2 data, etcd3 file", stateEtcd2, "3.5.35/etcd3", []string{
			prefix + "3.5.35/etcd3 but the data is etcd2 data (WAL and v2 snapshots, no v3 backend): etcd3 data needs the v3 backend member/snap/db" + fix,
		}},
		{"etcd2 data, 2.2.1/etcd2 file", stateEtcd2, "2.2.1/etcd2", nil},
		{"etcd2 data, 3.0.17/etcd2 file", stateEtcd2, "3.0.17/etcd2", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.CheckAgainst(versionfile.MustPair(tc.file))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckAgainst(%s) = %v, want nil", tc.file, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckAgainst(%s) = nil, want error", tc.file)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckAgainst(%s) error = %q, want it to contain %q", tc.file, err, w)
				}
			}
		})
	}
}

func TestFromState(t *testing.T) {
	tests := []struct {
		name    string
		s       State
		want    string   // pair, when no error
		wantErr []string // substrings of the error
	}{
		{"3.7 data", state37, "3.7.x/etcd3", nil},
		{"3.6 data", state36, "3.6.x/etcd3", nil},
		{"storage version wins", State{Storage: versionfile.StorageEtcd3, StorageVersion: "3.7.0", ClusterVersion: "3.6.0", HasV3Keys: true}, "3.7.x/etcd3", nil},
		{"3.5 data", state35, "3.5.x/etcd3", nil},
		{"cluster version with patch", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.5.9", HasV3Keys: true}, "3.5.x/etcd3", nil},
		{"no v3 key: maybe etcd2 served by 3.x", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.4.0"}, "", []string{
			"detected etcd3 data (cluster version 3.4.0) without a single v3 key, which may be etcd2 data served by etcd 3.x: write version.txt naming the version and storage that last served it",
		}},
		{"3.4-style cluster version", state34CV, "3.4.x/etcd3", nil},
		{"etcd2", stateEtcd2, "", []string{
			"detected etcd2 data (WAL and v2 snapshots, no v3 backend), which does not record the etcd version that wrote it: write version.txt naming it, e.g. echo 2.2.5/etcd2 > version.txt, or bundle an etcd 2.x (such data is then taken as written by the oldest bundled 2.x)",
		}},
		{"no version recorded", state34, "", []string{
			"detected etcd3 data (written by etcd 3.4 or older), which does not record the etcd version exactly: write version.txt naming the version that last served it, e.g. echo 3.4.13/etcd3 > version.txt",
		}},
		{"term only", state35TermOnly, "", []string{"detected etcd3 data (written by etcd 3.5), which does not record the etcd version exactly", "3.4.13/etcd3"}},
		// A new cluster of 3.5+ members records 3.0 until every member has
		// published its version (a 3-member 3.5.35 cluster stopped once it served).
		{"the initial 3.0 of a new 3.5+ cluster", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.0.0", HasTerm: true, HasV3Keys: true}, "3.5.x/etcd3", nil},
		{"3.0 without the term", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.0.0", HasV3Keys: true}, "3.0.x/etcd3", nil},
		{"3.4 with the term a cut-short 3.5 step wrote", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.4.0", HasTerm: true, HasV3Keys: true}, "3.4.x/etcd3", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := FromState(tc.s)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("FromState = %v", err)
				}
				if p.String() != tc.want {
					t.Errorf("FromState = %s, want %s", p, tc.want)
				}
				// What FromState derives must pass CheckAgainst for the same state.
				if err := tc.s.CheckAgainst(p); err != nil {
					t.Errorf("CheckAgainst(FromState()) = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("FromState = %s, want error", p)
			}
			if p.Version != nil {
				t.Errorf("FromState returned %v with an error", p)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// mkTree creates the files (ending without "/") and dirs (ending in "/") under root.
func mkTree(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(root, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		tree    []string
		missing bool
		want    State
		wantErr []string // substrings; "<dir>" is replaced by the data dir
	}{
		{name: "nonexistent dir", missing: true, want: State{Empty: true}},
		{name: "empty dir", want: State{Empty: true}},
		{name: "only lost+found", tree: []string{"lost+found/"}, want: State{Empty: true}},
		{name: "lost+found and version.txt", tree: []string{"lost+found/", "version.txt"}, want: State{Empty: true}},
		{name: "leftover version.txt temp file", tree: []string{".version.txt.tmp-12345"}, want: State{Empty: true}},
		{name: "stray file", tree: []string{"lost+found/", "foo"}, wantErr: []string{
			`data dir <dir> holds "foo" but no etcd member directory: point --data-dir at an etcd data dir or an empty dir`,
		}},
		{name: "stray dir", tree: []string{"data/"}, wantErr: []string{`holds "data" but no etcd member directory`}},
		{name: "stray hidden file", tree: []string{".DS_Store"}, wantErr: []string{`holds ".DS_Store"`}},
		{name: "WAL only", tree: []string{"member/wal/0.wal"}, want: State{Storage: versionfile.StorageEtcd2}},
		{name: "WAL and v2 snapshot", tree: []string{"member/wal/0000000000000000-0000000000000000.wal", "member/snap/0000000000000002-0000000000000010.snap"}, want: State{Storage: versionfile.StorageEtcd2}},
		{name: "WAL and a stray file beside member", tree: []string{"member/wal/0.wal", "foo"}, want: State{Storage: versionfile.StorageEtcd2}},
		{name: "empty member dir", tree: []string{"member/"}, wantErr: []string{
			"data dir <dir> has a member directory but neither <dir>/member/snap/db nor WAL files in <dir>/member/wal: it is not a complete etcd data dir",
		}},
		{name: "member with empty wal dir", tree: []string{"member/wal/", "member/snap/"}, wantErr: []string{"not a complete etcd data dir"}},
		{name: "member with non-wal files", tree: []string{"member/wal/0.tmp"}, wantErr: []string{"not a complete etcd data dir"}},
		{name: "corrupt backend", tree: []string{"member/snap/db", "member/wal/0.wal"}, wantErr: []string{"open etcd backend <dir>/member/snap/db"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.missing {
				dir = filepath.Join(dir, "missing")
			}
			mkTree(t, dir, tc.tree...)
			got, err := Detect(dir)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Detect: %v", err)
				}
				if got != tc.want {
					t.Errorf("Detect = %#v, want %#v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Detect = %#v, want error", got)
			}
			for _, w := range tc.wantErr {
				w = strings.ReplaceAll(w, "<dir>", dir)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Detect error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDetectDataDirIsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Detect(path)
	if err == nil || !strings.Contains(err.Error(), "read data dir "+path) {
		t.Errorf("Detect(file) = %v, want error containing %q", err, "read data dir "+path)
	}
}

func TestLayoutPaths(t *testing.T) {
	d := "/var/etcd/data"
	if got, want := BackendPath(d), filepath.Join(d, "member", "snap", "db"); got != want {
		t.Errorf("BackendPath = %q, want %q", got, want)
	}
	if got, want := WALDir(d), filepath.Join(d, "member", "wal"); got != want {
		t.Errorf("WALDir = %q, want %q", got, want)
	}
	if got, want := SnapDir(d), filepath.Join(d, "member", "snap"); got != want {
		t.Errorf("SnapDir = %q, want %q", got, want)
	}
}

// Versions read from a damaged backend must give errors, never panics: none of
// them names a version migrate could plan from, so FromState refuses each one
// (saying the recorded version cannot be parsed and how to fix it: write
// version.txt), and a version.txt of 3.5.35 cannot be confirmed against such data
// either (CheckAgainst refuses it, naming the data and how to fix version.txt).
// Guessing a version from any of them is wrong: a pair without error here would
// have migrate run an etcd on data whose version it does not know.
func TestDamagedBackendVersions(t *testing.T) {
	for _, st := range []State{
		{Storage: versionfile.StorageEtcd3, StorageVersion: "garbage"},
		{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.6"},
		{Storage: versionfile.StorageEtcd3, StorageVersion: "10000.0.0", HasV3Keys: true},
	} {
		p, err := FromState(st)
		if err == nil {
			t.Errorf("FromState(%+v) = %#v without error, want a refusal", st, p)
		} else if !strings.Contains(err.Error(), "cannot be parsed") || !strings.Contains(err.Error(), "write version.txt") {
			t.Errorf("FromState(%+v) error %q should say the recorded version cannot be parsed and to write version.txt", st, err)
		}
		err = st.CheckAgainst(versionfile.MustPair("3.5.35/etcd3"))
		if err == nil {
			t.Errorf("CheckAgainst(3.5.35/etcd3) on %+v accepted data whose version cannot be read", st)
		} else if !strings.Contains(err.Error(), st.String()) || !strings.Contains(err.Error(), "fix version.txt") {
			t.Errorf("CheckAgainst(3.5.35/etcd3) on %+v: %q should name the data and how to fix version.txt", st, err)
		}
	}
}

// TestReconcile: the pair planning starts from is version.txt's when the data
// agrees, and the data's minor with the patch unknown when a step cut short moved
// the data one minor off version.txt.
func TestReconcile(t *testing.T) {
	tests := []struct {
		name string
		s    State
		file string
		want string
	}{
		{"agree", state35, "3.5.10/etcd3", "3.5.10/etcd3"},
		{"agree, 3.4 cluster version", state34CV, "3.4.13/etcd3", "3.4.13/etcd3"},
		{"upgrade to 3.5 cut short", state35, "3.4.13/etcd3", "3.5.x/etcd3"},
		{"upgrade to 3.5 cut short after the term, before the cluster version", state35TermOnly, "3.4.13/etcd3", "3.5.x/etcd3"},
		{"upgrade to 3.7 cut short", state37, "3.6.16/etcd3", "3.7.x/etcd3"},
		{"rollback to 3.6 cut short", state36, "3.7.3/etcd3", "3.6.x/etcd3"},
		{"rollback to 3.4 cut short", state34CV, "3.5.35/etcd3", "3.4.x/etcd3"},
		{"no version recorded", state34, "3.4.13/etcd3", "3.4.13/etcd3"},
		{"etcd2 served by 3.4", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.4.0"}, "3.4.13/etcd2", "3.4.13/etcd2"},
		{"etcd2 one minor behind its backend stays etcd2", State{Storage: versionfile.StorageEtcd3, ClusterVersion: "3.5.0"}, "3.4.13/etcd2", "3.4.13/etcd2"},
		{"empty", stateEmpty, "3.7.3/etcd3", "3.7.3/etcd3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.s.Reconcile(versionfile.MustPair(tc.file))
			if err != nil {
				t.Fatalf("Reconcile(%s) = %v", tc.file, err)
			}
			if got.String() != tc.want {
				t.Errorf("Reconcile(%s) = %s, want %s", tc.file, got, tc.want)
			}
			if strings.HasSuffix(tc.want, ".x/"+string(got.Storage)) != got.PatchUnknown {
				t.Errorf("Reconcile(%s) = %#v: PatchUnknown does not match %s", tc.file, got, tc.want)
			}
		})
	}
}
