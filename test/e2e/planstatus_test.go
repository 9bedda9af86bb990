package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
)

// planStatusCase is one kind of data dir and what plan and status say of it.
type planStatusCase struct {
	name    string
	dataDir func(t *testing.T) string
	// bundled overrides the tests' bundle (etcdtest.Bundled) when set.
	bundled string
	// plan is plan's whole stdout (to 3.7.3/etcd3); status the lines status's stdout
	// must hold.
	plan   string
	status []string
	// log: plan and status log this on stderr (the assumption for v2-only data
	// without version.txt).
	log string
	// refused: plan and status exit 2 with this error line (after status printed
	// its lines) instead.
	refused string
}

// checkPlanStatus runs plan and status on each case: both exit 0, print what is
// expected, and change nothing.
func checkPlanStatus(t *testing.T, binDir string, cases []planStatusCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := tc.dataDir(t)
			sum := ""
			if _, err := os.Stat(dataDir); err == nil {
				sum = etcdtest.Checksum(t, dataDir)
			}
			var extra []string
			if tc.bundled != "" {
				extra = append(extra, "--bundled-versions="+tc.bundled)
			}
			want := 0
			if tc.refused != "" {
				want = 2
			}
			p := runMigrate(t, binDir, dataDir, nil, append([]string{"plan", "--target-version=3.7.3"}, extra...)...)
			if p.code != want || p.stdout != tc.plan {
				t.Errorf("plan: exit %d, stdout:\n%s\nwant exit %d and:\n%s\nstderr:\n%s", p.code, p.stdout, want, tc.plan, p.stderr)
			}
			s := runMigrate(t, binDir, dataDir, nil, append([]string{"status"}, extra...)...)
			if s.code != want {
				t.Errorf("status: exit %d, want %d; stdout:\n%s\nstderr:\n%s", s.code, want, s.stdout, s.stderr)
			}
			if tc.log != "" {
				for _, r := range []result{p, s} {
					if !strings.Contains(r.stderr, tc.log) {
						t.Errorf("stderr lacks %q:\n%s", tc.log, r.stderr)
					}
				}
			}
			if tc.refused != "" {
				for _, r := range []result{p, s} {
					want := "migrate: error: " + strings.ReplaceAll(tc.refused, "DATA", dataDir)
					if got := errorLine(t, r); got != want {
						t.Errorf("error line %q, want %q", got, want)
					}
				}
			}
			for _, l := range append([]string{"data dir:    " + dataDir}, tc.status...) {
				if !strings.Contains(s.stdout, l+"\n") {
					t.Errorf("status lacks the line %q:\n%s", l, s.stdout)
				}
			}
			if sum != "" && etcdtest.Checksum(t, dataDir) != sum {
				t.Errorf("plan or status changed the data dir")
			}
		})
	}
}

// writeVersionTxt writes version.txt into dataDir ("" removes it).
func writeVersionTxt(t *testing.T, dataDir, pair string) string {
	t.Helper()
	path := filepath.Join(dataDir, "version.txt")
	var err error
	if pair == "" {
		err = os.Remove(path)
	} else {
		err = os.WriteFile(path, []byte(pair+"\n"), 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dataDir
}

// TestPlanStatusFixtures: plan and status on every kind of data the committed
// fixtures give: etcd3 and etcd2 data of 3.4.13 with and without version.txt, a
// step cut short, an empty and a missing data dir.
func TestPlanStatusFixtures(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	const walk34 = "step 1: upgrade-minor 3.4.13/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35)\n" +
		"step 2: upgrade-minor 3.5.35/etcd3 -> 3.6.16/etcd3 (run etcd-3.6.16)\n" +
		"step 3: upgrade-minor 3.6.16/etcd3 -> 3.7.3/etcd3 (run etcd-3.7.3)\n"
	cases := []planStatusCase{
		{
			name:    "etcd3 3.4.13",
			dataDir: func(t *testing.T) string { return etcdtest.ExtractFixture(t, fixture34) },
			plan:    "current: 3.4.13/etcd3\ntarget:  3.7.3/etcd3\n" + walk34,
			status:  []string{"version.txt: 3.4.13/etcd3", "data:        etcd3 data (cluster version 3.4.0)"},
		},
		{
			name:    "etcd3 3.4.13 without version.txt",
			dataDir: func(t *testing.T) string { return writeVersionTxt(t, etcdtest.ExtractFixture(t, fixture34), "") },
			plan: "current: 3.4.x/etcd3 (no version.txt; detected from the data, whose backend records the minor only)\ntarget:  3.7.3/etcd3\n" +
				"step 1: upgrade-patch 3.4.x/etcd3 -> 3.4.13/etcd3 (run etcd-3.4.13)\n" + renumber(walk34, 1),
			status: []string{"version.txt: missing", "data:        etcd3 data (cluster version 3.4.0)",
				"current:     3.4.x/etcd3 (no version.txt; detected from the data, whose backend records the minor only)"},
		},
		{
			name: "etcd3 3.4 with version.txt 3.3.27: a step cut short",
			dataDir: func(t *testing.T) string {
				return writeVersionTxt(t, etcdtest.ExtractFixture(t, fixture34), "3.3.27/etcd3")
			},
			plan: "current: 3.4.x/etcd3 (version.txt says 3.3.27/etcd3, but the data is etcd3 data (cluster version 3.4.0): a step was cut short after it changed what the data records)\n" +
				"target:  3.7.3/etcd3\nstep 1: upgrade-patch 3.4.x/etcd3 -> 3.4.13/etcd3 (run etcd-3.4.13)\n" + renumber(walk34, 1),
			status: []string{"version.txt: 3.3.27/etcd3",
				"current:     3.4.x/etcd3 (version.txt says 3.3.27/etcd3, but the data is etcd3 data (cluster version 3.4.0): a step was cut short after it changed what the data records)"},
		},
		{
			name:    "etcd2 3.4.13",
			dataDir: func(t *testing.T) string { return etcdtest.ExtractFixture(t, "etcd2-3.4.13.tar.gz") },
			plan: "current: 3.4.13/etcd2\ntarget:  3.7.3/etcd3\n" +
				"step 1: v2-to-v3 3.4.13/etcd2 -> 3.4.13/etcd3 (convert offline, then run etcd-3.4.13)\n" + renumber(walk34, 1),
			status: []string{"version.txt: 3.4.13/etcd2", "data:        etcd3 data (cluster version 3.4.0)"},
		},
		{
			// etcd 3.4 serving v2 data writes a db without v3 keys: the data
			// cannot tell etcd2 from etcd3 storage, so both refuse.
			name: "etcd2 of 3.4.13 without version.txt",
			dataDir: func(t *testing.T) string {
				return writeVersionTxt(t, etcdtest.ExtractFixture(t, "etcd2-3.4.13.tar.gz"), "")
			},
			status:  []string{"version.txt: missing", "data:        etcd3 data (cluster version 3.4.0)"},
			refused: "DATA has no version.txt: detected etcd3 data (cluster version 3.4.0) without a single v3 key, which may be etcd2 data served by etcd 3.x: write version.txt naming the version and storage that last served it (<version>/etcd2 or <version>/etcd3, e.g. 3.4.13/etcd2)",
		},
		{
			name:    "empty data dir",
			dataDir: func(t *testing.T) string { return t.TempDir() },
			plan:    "current: empty data dir\ntarget:  3.7.3/etcd3\nstep 1: write-version (empty data dir) -> 3.7.3/etcd3\n",
			status:  []string{"version.txt: missing", "data:        empty data dir"},
		},
		{
			name:    "empty data dir with version.txt",
			dataDir: func(t *testing.T) string { return writeVersionTxt(t, t.TempDir(), "3.5.35/etcd3") },
			plan:    "current: empty data dir (version.txt says 3.5.35/etcd3)\ntarget:  3.7.3/etcd3\nstep 1: write-version (empty data dir) -> 3.7.3/etcd3\n",
			status:  []string{"version.txt: 3.5.35/etcd3", "data:        empty data dir"},
		},
	}
	// etcd3 data of the newer bundled releases, written by each (fixture.Generate).
	parent := t
	written := map[string]string{}
	etcd3 := func(t *testing.T, v string) string {
		if d, ok := written[v]; ok {
			return etcdtest.CopyDir(t, d)
		}
		d := filepath.Join(parent.TempDir(), "data")
		if err := fixture.Generate(binDir, v, 200, 200, d, etcdtest.FreePort(t)); err != nil {
			t.Fatal(err)
		}
		written[v] = d
		return etcdtest.CopyDir(t, d)
	}
	for _, tc := range []struct{ v, data, plan string }{
		{"3.5.35", "etcd3 data (cluster version 3.5.0)", "step 1: upgrade-minor 3.5.35/etcd3 -> 3.6.16/etcd3 (run etcd-3.6.16)\nstep 2: upgrade-minor 3.6.16/etcd3 -> 3.7.3/etcd3 (run etcd-3.7.3)\n"},
		// 3.6+ records the storage version at its first snapshot or stop, which
		// a fresh data set may or may not have reached: not pinned.
		{"3.6.16", "", "step 1: upgrade-minor 3.6.16/etcd3 -> 3.7.3/etcd3 (run etcd-3.7.3)\n"},
		{"3.7.3", "", "nothing to do\n"},
	} {
		cases = append(cases, planStatusCase{
			name:    "etcd3 " + tc.v,
			dataDir: func(t *testing.T) string { return etcd3(t, tc.v) },
			plan:    "current: " + tc.v + "/etcd3\ntarget:  3.7.3/etcd3\n" + tc.plan,
			status:  []string{"version.txt: " + tc.v + "/etcd3", "data:        " + tc.data},
		})
		if tc.data == "" {
			cases[len(cases)-1].status = cases[len(cases)-1].status[:1]
		}
		x := tc.v[:3] + ".x/etcd3"
		noTxt := x + " (no version.txt; detected from the data, whose backend records the minor only)"
		cases = append(cases, planStatusCase{
			name:    "etcd3 " + tc.v + " without version.txt",
			dataDir: func(t *testing.T) string { return writeVersionTxt(t, etcd3(t, tc.v), "") },
			plan:    "current: " + noTxt + "\ntarget:  3.7.3/etcd3\nstep 1: upgrade-patch " + x + " -> " + tc.v + "/etcd3 (run etcd-" + tc.v + ")\n" + renumber(strings.TrimPrefix(tc.plan, "nothing to do\n"), 1),
			status:  []string{"version.txt: missing", "current:     " + noTxt},
		})
	}
	checkPlanStatus(t, binDir, cases)
}

// renumber shifts the "step N:" lines of steps by n.
func renumber(steps string, n int) string {
	if steps == "" {
		return ""
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(steps, "\n"), "\n") {
		var i int
		var rest string
		if _, err := fmt.Sscanf(l, "step %d:", &i); err == nil {
			_, rest, _ = strings.Cut(l, ":")
			l = fmt.Sprintf("step %d:%s", i+n, rest)
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

// TestStatusWhileServed: while an etcd serves the data (it holds the db's lock),
// status still prints what version.txt says, then exits 2 saying why the data
// cannot be read.
func TestStatusWhileServed(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	srv := etcdtest.Serve(t, binDir, "3.4.13", dataDir)
	defer srv.Stop()
	s := runMigrate(t, binDir, dataDir, nil, "status")
	t.Logf("status while served: exit %d\n%s%s", s.code, s.stdout, s.stderr)
	if want := "data dir:    " + dataDir + "\nversion.txt: 3.4.13/etcd3\n"; s.code != 2 || !strings.HasPrefix(s.stdout, want) {
		t.Fatalf("status: exit %d, stdout %q; want exit 2 and %q first", s.code, s.stdout, want)
	}
	if got, want := errorLine(t, s), "migrate: error: open "+dataDir+"/member/snap/db: locked by another process (is etcd running on this data dir?)"; got != want {
		t.Errorf("error line %q, want %q", got, want)
	}
}

// TestPlanStatusTakeRunCommandLine: an operator previews a run by putting plan or
// status in front of its command line: every flag of the run, the etcd args after
// "--" (the data dir among them), DATA_DIRECTORY unset. plan checks what the run
// checks of the bin dir: an etcd arg the target refuses is exit 2, naming it.
func TestPlanStatusTakeRunCommandLine(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	sum := etcdtest.Checksum(t, dataDir)
	run := func(args ...string) result {
		cmd := exec.Command(filepath.Join(binDir, "migrate"), args...)
		cmd.Env = append(os.Environ(), "BUNDLED_VERSIONS="+etcdtest.Bundled)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		return runResult(t, cmd.Run(), &out, &errb)
	}
	runFlags := []string{"--bin-dir", binDir, "--target-version", "3.7.3", "--name=etcd-0", "--step-timeout=1m",
		"--port=" + strconv.Itoa(etcdtest.FreePort(t)), "--log-format=json"}
	etcdArgs := []string{"--", "--data-dir=" + dataDir, "--name=etcd-0", "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379"}

	p := run(append(append([]string{"plan"}, runFlags...), etcdArgs...)...)
	if want := "current: 3.4.13/etcd3\ntarget:  3.7.3/etcd3\nstep 1: upgrade-minor"; p.code != 0 || !strings.HasPrefix(p.stdout, want) {
		t.Fatalf("plan: exit %d, stdout %q, want %q...\n%s", p.code, p.stdout, want, p.stderr)
	}
	s := run(append(append([]string{"status"}, runFlags...), etcdArgs...)...)
	if want := "data dir:    " + dataDir + "\nversion.txt: 3.4.13/etcd3\n"; s.code != 0 || !strings.HasPrefix(s.stdout, want) {
		t.Fatalf("status: exit %d, stdout %q, want %q...\n%s", s.code, s.stdout, want, s.stderr)
	}
	p = run(append(append([]string{"plan"}, runFlags...), append(etcdArgs, "--no-such-flag=1")...)...)
	if want := "migrate: error: the target etcd 3.7.3 does not accept its command line: flag provided but not defined: -no-such-flag: remove --no-such-flag after --; nothing was changed"; p.code != 2 || errorLine(t, p) != want {
		t.Fatalf("plan with an unknown etcd flag: exit %d, error line %q, want 2 and %q", p.code, errorLine(t, p), want)
	}
	if etcdtest.Checksum(t, dataDir) != sum {
		t.Fatal("plan or status changed the data dir")
	}
}
