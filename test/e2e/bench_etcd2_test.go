package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/v2tov3"
)

// convertDirEnv makes the test binary a bare converter (see TestMain): the
// benchmark runs our conversion in its own process to read its peak RSS.
const convertDirEnv = "ETCD_MIGRATE_BENCH_CONVERT_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(convertDirEnv); dir != "" {
		_, err := v2tov3.Convert(context.Background(), v2tov3.Options{
			DataDir: dir, ClusterVersion: "3.4.0", Name: "etcd-member",
			PeerURLs: []string{"http://localhost:2380"}, InitialCluster: "etcd-member=http://localhost:2380",
			TTLKeysDir: "/registry/events", DefaultTTL: time.Hour, Now: time.Now,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// measured runs cmd and returns its wall time and peak RSS (MiB). The peak is the
// child's VmHWM, sampled every 5 ms while it runs: the rusage maxrss of a child
// that Go starts (vfork + exec) is at least the parent's own peak RSS, here the
// benchmark's after generating the data, so it says nothing about the child.
func measured(b *testing.B, cmd *exec.Cmd) (time.Duration, float64) {
	b.Helper()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var peakKiB int64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if kib := vmHWM(status); kib > peakKiB {
			peakKiB = kib
		}
		select {
		case err := <-done:
			wall := time.Since(start)
			if err != nil {
				b.Fatalf("%s: %v\n%s", cmd.Path, err, out.String())
			}
			return wall, float64(peakKiB) / 1024
		case <-tick.C:
		}
	}
}

// vmHWM reads the peak resident set size (KiB) from a /proc/<pid>/status file, or 0.
func vmHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkEtcd2Convert converts the same etcd2 data dir (BENCH_ETCD2_KEYS keys,
// default 100000, 10% events with TTLs, values 0.6-2 KiB) with our converter and
// with the anchor `etcdctl-3.4.13 migrate`, each on a fresh copy, and prints the
// medians of wall time and peak RSS and their ratios. Run: make bench.
func BenchmarkEtcd2Convert(b *testing.B) {
	binDir := etcdtest.BinDir(b)
	opts := fixture.Etcd2BenchOptions()
	if s := os.Getenv("BENCH_ETCD2_KEYS"); s != "" {
		opts.Keys, _ = strconv.Atoi(s)
	}
	genStart := time.Now()
	pristine := fixture.Etcd2DataDir(b, binDir, opts)
	fmt.Printf("generated an etcd2 data dir of %d bulk keys in %v\n", opts.Keys, time.Since(genStart).Round(time.Second))
	var oursT, oursM, anchorT, anchorM []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir := etcdtest.CopyDir(b, pristine)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), convertDirEnv+"="+dir)
		t, m := measured(b, cmd)
		oursT, oursM = append(oursT, float64(t.Milliseconds())), append(oursM, m)

		dir = etcdtest.CopyDir(b, pristine)
		cmd = exec.Command(filepath.Join(binDir, "etcdctl-3.4.13"), "migrate", "--data-dir="+dir)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		t, m = measured(b, cmd)
		anchorT, anchorM = append(anchorT, float64(t.Milliseconds())), append(anchorM, m)
	}
	b.StopTimer()
	ot, om, at, am := median(oursT), median(oursM), median(anchorT), median(anchorM)
	fmt.Printf("etcd2 -> etcd3 conversion of %d keys, median of %d runs each:\n", opts.Keys, b.N)
	fmt.Printf("  ours (v2tov3.Convert):       %7.0f ms  %7.1f MiB peak RSS\n", ot, om)
	fmt.Printf("  etcdctl-3.4.13 migrate:      %7.0f ms  %7.1f MiB peak RSS\n", at, am)
	fmt.Printf("  ratio: %.1fx faster, %.2f of its peak RSS\n", at/ot, om/am)
	b.ReportMetric(ot, "ms/ours")
	b.ReportMetric(at, "ms/etcdctl-migrate")
	b.ReportMetric(om, "MiB/ours")
	b.ReportMetric(am, "MiB/etcdctl-migrate")
}

// BenchmarkLeaseAttachOnline measures the alternative to writing leases offline:
// attaching a lease to 10k existing keys through a running etcd 3.4.13, one Put per
// key (the Kubernetes tool's way) and in Txns of 128 Puts. Compare with
// BenchmarkWriteBackendTTL in pkg/v2tov3 (offline: leases cost nothing extra).
func BenchmarkLeaseAttachOnline(b *testing.B) {
	binDir := etcdtest.BinDir(b)
	s := etcdtest.Serve(b, binDir, "3.4.13", filepath.Join(b.TempDir(), "data"))
	ctx := context.Background()
	const n = 10000
	value := strings.Repeat("x", 1300)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("/registry/events/ns-%d/e-%d", i%50, i)
	}
	for i := 0; i < n; i += 128 {
		var ops []clientv3.Op
		for _, k := range keys[i:min(i+128, n)] {
			ops = append(ops, clientv3.OpPut(k, value))
		}
		if _, err := s.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	lease, err := s.Client.Grant(ctx, 3600)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for _, k := range keys {
			if _, err := s.Client.Put(ctx, k, value, clientv3.WithLease(lease.ID)); err != nil {
				b.Fatal(err)
			}
		}
		perKey := time.Since(start)
		start = time.Now()
		for j := 0; j < n; j += 128 {
			var ops []clientv3.Op
			for _, k := range keys[j:min(j+128, n)] {
				ops = append(ops, clientv3.OpPut(k, value, clientv3.WithLease(lease.ID)))
			}
			if _, err := s.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
		}
		txn := time.Since(start)
		fmt.Printf("attach a lease to %d keys online: one Put per key %.0f keys/s, Txn of 128 %.0f keys/s\n", n, n/perKey.Seconds(), n/txn.Seconds())
		b.ReportMetric(n/perKey.Seconds(), "keys/s-put")
		b.ReportMetric(n/txn.Seconds(), "keys/s-txn128")
	}
}
