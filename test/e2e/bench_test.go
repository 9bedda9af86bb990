package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

var walkVersions = []string{"3.5.35", "3.6.16", "3.7.3"}

// benchData generates the etcd3 data set of the walk and rollback benchmarks with
// etcd 3.4.13: BENCH_KEYS keys (default 20000) of about 600 bytes.
func benchData(b *testing.B, binDir string) (string, int) {
	keys := 20000
	if s := os.Getenv("BENCH_KEYS"); s != "" {
		keys, _ = strconv.Atoi(s)
	}
	pristine := filepath.Join(b.TempDir(), "data")
	if err := fixture.Generate(binDir, "3.4.13", keys, 600, pristine, etcdtest.FreePort(b)); err != nil {
		b.Fatal(err)
	}
	return pristine, keys
}

// BenchmarkWalk times the 3.4.13 -> 3.7.3 walk on a generated data set of
// BENCH_KEYS keys (default 20000) and, per step, compares with the bare start of
// that etcd on the same data (start until the cluster version is reported and a
// write commits). Run: make bench (3 iterations; medians are printed).
func BenchmarkWalk(b *testing.B) {
	binDir := etcdtest.BinDir(b)
	pristine, keys := benchData(b, binDir)
	steps := map[string][]float64{}
	var walks []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dataDir := etcdtest.CopyDir(b, pristine)
		start := time.Now()
		cmd := migrateCmdB(b, binDir, dataDir, "--target-version=3.7.3", "--exec=false", "--log-format=json")
		out, err := cmd.CombinedOutput()
		walks = append(walks, float64(time.Since(start).Milliseconds()))
		if err != nil {
			b.Fatalf("walk: %v\n%s", err, out)
		}
		for v, ms := range stepDurations(b, out) {
			steps[v] = append(steps[v], ms)
		}
	}
	b.StopTimer()
	bare := map[string][]float64{}
	for _, v := range walkVersions {
		// Data at v, then v's own start-to-ready on it, three times.
		dataDir := etcdtest.CopyDir(b, pristine)
		if out, err := migrateCmdB(b, binDir, dataDir, "--target-version="+v, "--exec=false").CombinedOutput(); err != nil {
			b.Fatalf("walk to %s: %v\n%s", v, err, out)
		}
		for i := 0; i < 3; i++ {
			bare[v] = append(bare[v], bareStartToReady(b, binDir, v, dataDir))
		}
	}
	fmt.Printf("walk 3.4.13 -> 3.7.3 on %d keys: median %.0f ms over %d walks\n", keys, median(walks), len(walks))
	fmt.Printf("%-8s %18s %22s %8s\n", "etcd", "step median (ms)", "bare start-to-ready", "ratio")
	for _, v := range walkVersions {
		s, r := median(steps[v]), median(bare[v])
		fmt.Printf("%-8s %18.0f %22.0f %8.2f\n", v, s, r, s/r)
		b.ReportMetric(s, "ms/step-"+v)
		b.ReportMetric(r, "ms/bare-"+v)
	}
	b.ReportMetric(median(walks), "ms/walk")
}

func migrateCmdB(b *testing.B, binDir, dataDir string, args ...string) *exec.Cmd {
	base := []string{
		"--data-dir=" + dataDir, "--bin-dir=" + binDir, "--bundled-versions=" + etcdtest.Bundled,
		"--name=etcd-member",
		fmt.Sprintf("--port=%d", etcdtest.FreePort(b)), fmt.Sprintf("--peer-port=%d", etcdtest.FreePort(b)),
	}
	cmd := exec.Command(filepath.Join(binDir, "migrate"), append(base, args...)...)
	cmd.Env = append(os.Environ(), "DO_NOT_MOVE_BINARIES=true")
	return cmd
}

// BenchmarkRollback times the 3.7.3 -> 3.4.13 rollback chain on the same generated
// data set as BenchmarkWalk (BENCH_KEYS, default 20000), step by step, next to the
// upgrade step of the same pair of minors. Run: make bench.
func BenchmarkRollback(b *testing.B) {
	binDir := etcdtest.BinDir(b)
	pristine, keys := benchData(b, binDir)
	// Upgrade steps of the walk, for comparison, and the walked data to roll back.
	out, err := migrateCmdB(b, binDir, pristine, "--target-version=3.7.3", "--exec=false", "--log-format=json").CombinedOutput()
	if err != nil {
		b.Fatalf("walk: %v\n%s", err, out)
	}
	up := stepDurations(b, out)
	down := map[string][]float64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dataDir := etcdtest.CopyDir(b, pristine)
		out, err := migrateCmdB(b, binDir, dataDir, "--target-version=3.4.13", "--exec=false", "--log-format=json").CombinedOutput()
		if err != nil {
			b.Fatalf("rollback: %v\n%s", err, out)
		}
		for v, ms := range stepDurationsOf(b, out, []string{"3.6.16", "3.5.35", "3.4.13"}) {
			down[v] = append(down[v], ms)
		}
	}
	b.StopTimer()
	fmt.Printf("rollback 3.7.3 -> 3.4.13 on %d keys, median of %d:\n", keys, b.N)
	for _, p := range [][2]string{{"3.7.3", "3.6.16"}, {"3.6.16", "3.5.35"}, {"3.5.35", "3.4.13"}} {
		m := median(down[p[1]])
		fmt.Printf("  %s -> %s: %6.0f ms   (upgrade %s -> %s: %6.0f ms)\n", p[0], p[1], m, p[1], p[0], up[p[0]])
		b.ReportMetric(m, "ms/rollback-to-"+p[1])
	}
}

// stepDurations reads the JSON "step done" lines of a walk: etcd version ->
// duration_ms.
func stepDurations(b *testing.B, out []byte) map[string]float64 {
	return stepDurationsOf(b, out, walkVersions)
}

// stepDurationsOf reads the JSON "step done" lines: the etcd a step ended with ->
// duration_ms; it must find exactly versions.
func stepDurationsOf(b *testing.B, out []byte, versions []string) map[string]float64 {
	res := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string  `json:"msg"`
			Etcd     string  `json:"etcd"`
			Duration float64 `json:"duration_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "step done" {
			res[line.Etcd] = line.Duration
		}
	}
	if len(res) != len(versions) {
		b.Fatalf("found %d step timings, want %d:\n%s", len(res), len(versions), out)
	}
	return res
}

// bareStartToReady starts etcd-v on dataDir as a plain server (default snapshot
// count, same short election timeout as the steps) and times start until the
// cluster version is reported and a write commits.
func bareStartToReady(b *testing.B, binDir, v, dataDir string) float64 {
	cfg := bareConfig(b, binDir, v, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	p, err := etcdproc.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop()
	if _, err := p.WaitVersions(ctx); err != nil {
		b.Fatal(err)
	}
	c, err := p.Client()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := p.WaitWrite(ctx, c); err != nil {
		b.Fatal(err)
	}
	return float64(time.Since(start).Milliseconds())
}

// bareConfig is a plain etcd-v on dataDir for the bare-start comparisons: free
// loopback ports, the default snapshot count, extra flags last.
func bareConfig(b *testing.B, binDir, v, dataDir string, extra ...string) etcdproc.Config {
	port, peer := etcdtest.FreePort(b), etcdtest.FreePort(b)
	return etcdproc.Config{
		Binary: filepath.Join(binDir, "etcd-"+v), Version: versionfile.MustVersion(v), DataDir: dataDir,
		Member: etcdproc.Member{Name: "etcd-member", ClientURL: fmt.Sprintf("http://127.0.0.1:%d", port),
			ListenPeerURLs: fmt.Sprintf("http://127.0.0.1:%d", peer), InitialAdvertisePeerURLs: "http://localhost:2380",
			InitialCluster: "etcd-member=http://localhost:2380", ExtraArgs: extra},
		SnapshotCount: 10000,
		StopTimeout:   time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
