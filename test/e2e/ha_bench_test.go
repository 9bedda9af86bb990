package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/cluster"
	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// BenchmarkHA5Members times the lockstep walk 3.4.13 -> 3.7.3 of a 5-member
// cluster (BENCH_HA_MEMBERS overrides the count, e.g. 3) restarted together,
// next to the walk of a single member generated the same way with the same
// BENCH_HA_KEYS keys (default 2000). Every iteration walks both from the same
// generated data. Run: make bench (3 iterations; medians are printed).
func BenchmarkHA5Members(b *testing.B) {
	binDir := etcdtest.BinDir(b)
	keys, members := envInt("BENCH_HA_KEYS", haKeys), envInt("BENCH_HA_MEMBERS", 5)
	multi := cluster.GenerateN(b, binDir, "3.4.13", keys, members)
	single := cluster.GenerateN(b, binDir, "3.4.13", keys, 1)
	multiData, singleData := multi.Save(b), single.Save(b)
	var multiMs, singleMs []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		multi.Restore(b, multiData)
		single.Restore(b, singleData)
		b.StartTimer()
		start := time.Now()
		runs := lockstep(b, multi, "3.7.3", 0, "--exec=false")
		multiMs = append(multiMs, float64(time.Since(start).Milliseconds()))
		requireExit(b, runs, 0)
		start = time.Now()
		r := single.RunMigrate(b, single.Members[0], "3.7.3", nil, "--exec=false")
		waitRuns(b, []*cluster.MigrateRun{r}, haWalkTimeout)
		singleMs = append(singleMs, float64(time.Since(start).Milliseconds()))
		requireExit(b, []*cluster.MigrateRun{r}, 0)
	}
	b.StopTimer()
	m, s := median(multiMs), median(singleMs)
	fmt.Printf("lockstep 3.4.13 -> 3.7.3, %d keys: %d members median %.0f ms, single member median %.0f ms (ratio %.2f) over %d walks\n",
		keys, members, m, s, m/s, len(multiMs))
	b.ReportMetric(m, "ms/multi-walk")
	b.ReportMetric(s, "ms/single-walk")
}
