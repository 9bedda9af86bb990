//go:build oldetcd

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
)

// BenchmarkOldWalk times the seed's whole walk on data written by the real etcd
// 2.2.5 through its v2 API (BENCH_KEYS bulk keys, default 2000, 10% of them events
// with TTLs, etcd's default --snapshot-count): 2.2.5/etcd2 -> 3.7.3/etcd3 (the
// conversion at 3.1.20, then one step per minor), and the etcd2-mode upgrade
// 2.2.5/etcd2 -> 3.0.17/etcd2. Per step and in total, medians of b.N runs:
//
//	make old-etcd-binaries etcd-binaries build
//	BENCH_KEYS=100000 BENCH_OLD_DATA=/tmp/oldwalk ETCD_MIGRATE_BIN_DIR=$PWD/_output/bin go test -tags oldetcd -run '^$' -bench BenchmarkOldWalk -benchtime 3x -timeout 60m ./test/e2e/
func BenchmarkOldWalk(b *testing.B) {
	binDir := etcdtest.BinDir(b)
	keys := 2000
	if s := os.Getenv("BENCH_KEYS"); s != "" {
		keys, _ = strconv.Atoi(s)
	}
	// BENCH_OLD_DATA names a dir that keeps the generated data between runs (the
	// benchmark function runs twice, N=1 then N=3, and 100k keys take minutes to
	// write through 2.2.5's v2 API); it must be for the same BENCH_KEYS.
	pristine := filepath.Join(b.TempDir(), "data")
	if d := os.Getenv("BENCH_OLD_DATA"); d != "" {
		pristine = filepath.Join(d, fmt.Sprintf("data-%d", keys))
	}
	if _, err := os.Stat(filepath.Join(pristine, "version.txt")); err != nil {
		os.RemoveAll(pristine)
		start := time.Now()
		opts := fixture.Etcd2Options{Keys: keys, EventFraction: 0.1, SnapshotCount: 10000}
		if err := fixture.GenerateEtcd2Old(binDir, "2.2.5", opts, pristine, etcdtest.FreePortPair(b), nil); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("etcd 2.2.5 wrote %d bulk keys in %v (%s)\n", keys, time.Since(start).Round(time.Millisecond), mib(dirSize(b, pristine)))
	}

	walks := []struct {
		name string
		args []string
	}{
		{"2.2.5/etcd2 -> 3.7.3/etcd3", []string{"--target-version=3.7.3"}},
		{"2.2.5/etcd2 -> 3.0.17/etcd2 (etcd2 mode)", []string{"--target-version=3.0.17", "--target-storage=etcd2"}},
	}
	type timing struct {
		steps []string // "kind etcd", in order
		ms    map[string][]float64
		total []float64
	}
	res := make([]timing, len(walks))
	for i := range res {
		res[i].ms = map[string][]float64{}
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i, w := range walks {
			dataDir := etcdtest.CopyDir(b, pristine)
			args := append([]string{"--exec=false", "--log-format=json", "--bundled-versions=" + seedBundle}, w.args...)
			t0 := time.Now()
			out, err := migrateCmdB(b, binDir, dataDir, args...).CombinedOutput()
			res[i].total = append(res[i].total, float64(time.Since(t0).Milliseconds()))
			if err != nil {
				b.Fatalf("%s: %v\n%s", w.name, err, out)
			}
			steps := stepsDone(b, out)
			if n == 0 {
				for _, s := range steps {
					res[i].steps = append(res[i].steps, s.name)
				}
			}
			for _, s := range steps {
				res[i].ms[s.name] = append(res[i].ms[s.name], s.ms)
			}
			os.RemoveAll(dataDir)
			os.RemoveAll(dataDir + ".bak")
		}
	}
	b.StopTimer()
	for i, w := range walks {
		fmt.Printf("%s on %d keys, median of %d: %.0f ms in total (migrate's whole run)\n", w.name, keys, b.N, median(res[i].total))
		for _, s := range res[i].steps {
			fmt.Printf("  %-28s %8.0f ms\n", s, median(res[i].ms[s]))
		}
	}
	b.ReportMetric(median(res[0].total), "ms/walk-to-3.7.3")
	b.ReportMetric(median(res[1].total), "ms/etcd2-to-3.0.17")
}

type stepDone struct {
	name string
	ms   float64
}

// stepsDone reads the JSON "step done" lines of a run in order.
func stepsDone(b *testing.B, out []byte) []stepDone {
	var res []stepDone
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string  `json:"msg"`
			Kind     string  `json:"kind"`
			Etcd     string  `json:"etcd"`
			Duration float64 `json:"duration_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "step done" {
			res = append(res, stepDone{line.Kind + " " + line.Etcd, line.Duration})
		}
	}
	if len(res) == 0 {
		b.Fatalf("no step timings:\n%s", out)
	}
	return res
}
