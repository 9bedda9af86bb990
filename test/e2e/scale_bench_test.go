package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
	"github.com/etcd-migrate/etcd-migrate/pkg/backup"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// BenchmarkScale is `make bench-scale`: the 3.4.13 -> 3.7.3 walk on a large v3 data
// set written by the real etcd 3.4.13 (SCALE_KEYS keys, default 1,000,000, of
// SCALE_VALUE bytes, default 1024), SCALE_RUNS walks (default 3, medians), each step
// next to the bare start-to-ready-and-stop of the same etcd on a copy of the data
// that step starts from; then the etcd2 conversion of SCALE_ETCD2_KEYS v2 keys
// (default 1,000,000; 0 skips it) against `etcdctl-3.4.13 migrate`, one run each.
// SCALE_DATA names a dir that keeps the generated data sets between runs.
func BenchmarkScale(b *testing.B) {
	if os.Getenv("SCALE_BENCH") == "" || b.N > 1 {
		b.Skip("make bench-scale runs it (SCALE_BENCH=1, -benchtime 1x): it takes tens of minutes")
	}
	binDir := etcdtest.BinDir(b)
	keys, value := envInt("SCALE_KEYS", 1000000), envInt("SCALE_VALUE", 1024)
	cache := os.Getenv("SCALE_DATA")
	if cache == "" {
		cache = b.TempDir()
	}
	pristine := filepath.Join(cache, fmt.Sprintf("v3-%d-%d", keys, value))
	if _, err := os.Stat(filepath.Join(pristine, "version.txt")); err != nil {
		os.RemoveAll(pristine)
		t0 := time.Now()
		if err := fixture.GenerateScale(binDir, "3.4.13", keys, value, pristine, etcdtest.FreePortPair(b)); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("etcd 3.4.13 wrote %d keys of %d bytes in %v\n", keys, value, time.Since(t0).Round(time.Second))
	}
	db, _ := os.Stat(filepath.Join(pristine, "member", "snap", "db"))
	fmt.Printf("data set: %d keys of %d bytes, db %s, data dir %s\n", keys, value, mib(db.Size()), mib(dirSize(b, pristine)))
	// SCALE_PARTS picks parts to run (walk, backup, convert; all by default).
	parts := os.Getenv("SCALE_PARTS")
	part := func(p string) bool { return parts == "" || slices.Contains(strings.Split(parts, ","), p) }
	if part("walk") {
		scaleWalk(b, binDir, pristine)
	}
	if part("backup") {
		scaleBackup(b, pristine)
	}
	if n := envInt("SCALE_ETCD2_KEYS", 1000000); n > 0 && part("convert") {
		scaleConvert(b, binDir, cache, n)
	}
}

// scaleStep is what a walk's log says of one step.
type scaleStep struct {
	Msg      string  `json:"msg"`
	Etcd     string  `json:"etcd"`
	Duration float64 `json:"duration_ms"`
	Versions float64 `json:"versions_ms"`
	Ready    float64 `json:"ready_ms"`
	Snapshot float64 `json:"snapshot_ms"`
	Stop     float64 `json:"stop_ms"`
	Digest   float64 `json:"digest_ms"`
	Bytes    int64   `json:"bytes"`
}

func scaleWalk(b *testing.B, binDir, pristine string) {
	runs := envInt("SCALE_RUNS", 3)
	if runs == 0 {
		return // SCALE_RUNS=0: generate the data sets only
	}
	var total, backupMs, backupBytes, written, ownRSS, ownAnon, treeRSS, treeAnon []float64
	step := map[string]map[string][]float64{} // etcd -> field -> values
	for i := 0; i < runs; i++ {
		dataDir := etcdtest.CopyDir(b, pristine)
		dropCaches()
		cmd := migrateCmdB(b, binDir, dataDir, "--target-version=3.7.3", "--exec=false", "--log-format=json")
		r := runSampled(b, cmd)
		total = append(total, r.wall)
		written = append(written, float64(r.written))
		ownRSS, ownAnon = append(ownRSS, r.peak.ownRSS), append(ownAnon, r.peak.ownAnon)
		treeRSS, treeAnon = append(treeRSS, r.peak.treeRSS), append(treeAnon, r.peak.treeAnon)
		for _, l := range logLines(r.out) {
			switch l.Msg {
			case "backup written":
				backupMs, backupBytes = append(backupMs, l.Duration), append(backupBytes, float64(l.Bytes))
			case "step done":
				if step[l.Etcd] == nil {
					step[l.Etcd] = map[string][]float64{}
				}
				for k, v := range map[string]float64{"step": l.Duration, "versions": l.Versions, "ready": l.Ready,
					"snapshot": l.Snapshot, "stop": l.Stop, "digest": l.Digest} {
					step[l.Etcd][k] = append(step[l.Etcd][k], v)
				}
			}
		}
		os.RemoveAll(dataDir)
		os.RemoveAll(dataDir + ".bak")
	}
	bare := scaleBare(b, binDir, pristine)
	fmt.Printf("\nwalk 3.4.13 -> 3.7.3, median of %d (make bench-scale):\n", runs)
	fmt.Printf("  %-8s %9s %9s %9s %9s %9s %9s   %9s %9s %7s\n", "step", "step ms", "versions", "ready", "snapshot", "stop", "digest", "bare ms", "bare stop", "ratio")
	var stepSum, bareSum, digestSum float64
	for _, v := range walkVersions {
		s := step[v]
		fmt.Printf("  %-8s %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f   %9.0f %9.0f %7.2f\n", v, median(s["step"]), median(s["versions"]), median(s["ready"]),
			median(s["snapshot"]), median(s["stop"]), median(s["digest"]), bare[v].total, bare[v].stop, median(s["step"])/bare[v].total)
		stepSum, bareSum, digestSum = stepSum+median(s["step"]), bareSum+bare[v].total, digestSum+median(s["digest"])
	}
	walk := median(total) - median(backupMs)
	fmt.Printf("  total %.0f ms; backup %.0f ms (%s copied, %.0f MB/s); walk without the backup %.0f ms\n",
		median(total), median(backupMs), mib(int64(median(backupBytes))), median(backupBytes)/1e6/(median(backupMs)/1000), walk)
	fmt.Printf("  walk without the backup / bare sum (%.0f ms): %.2fx (goal <= 1.15x); steps alone / bare sum: %.2fx\n", bareSum, walk/bareSum, stepSum/bareSum)
	fmt.Printf("  digests %.0f ms = %.0f%% of the steps' time (goal: under 15%% of a step)\n", digestSum, 100*digestSum/stepSum)
	fmt.Printf("  migrate's own peak: RssAnon %.0f MiB (goal < 150), VmRSS %.0f MiB; migrate + child: RssAnon %.0f MiB, VmRSS %.0f MiB\n",
		median(ownAnon), median(ownRSS), median(treeAnon), median(treeRSS))
	fmt.Printf("  bytes written by migrate and its children (rusage oublock): %s\n", mib(int64(median(written))))
	b.ReportMetric(walk/bareSum, "walk/bare")
	b.ReportMetric(median(ownAnon), "MiB-anon/migrate")
}

// bareTimes is a bare etcd's start until the cluster version is reported and a
// write commits, then its graceful stop; medians of three.
type bareTimes struct{ total, stop float64 }

// scaleBare runs each walk step's etcd bare on a copy of the data that step starts
// from: etcd-3.5.35 on the 3.4.13 data, and so on.
func scaleBare(b *testing.B, binDir, pristine string) map[string]bareTimes {
	res := map[string]bareTimes{}
	from := etcdtest.CopyDir(b, pristine)
	defer os.RemoveAll(from)
	for _, v := range walkVersions {
		var total, stop []float64
		for i := 0; i < 3; i++ {
			dir := etcdtest.CopyDir(b, from)
			dropCaches()
			t, s := bareStartStop(b, binDir, v, dir)
			total, stop = append(total, t), append(stop, s)
			os.RemoveAll(dir)
		}
		res[v] = bareTimes{median(total), median(stop)}
		if out, err := migrateCmdB(b, binDir, from, "--target-version="+v, "--exec=false", "--backup=false").CombinedOutput(); err != nil {
			b.Fatalf("walk to %s: %v\n%s", v, err, out)
		}
	}
	return res
}

// bareStartStop starts etcd-v on dataDir as a plain server and times it until the
// cluster version (3.6+: and the storage version) is at v's minor, as a step
// waits, and a write commits; then its graceful stop: (start to stopped, stop
// alone) in ms.
func bareStartStop(b *testing.B, binDir, v, dataDir string) (float64, float64) {
	cfg := bareConfig(b, binDir, v, dataDir, fmt.Sprintf("--quota-backend-bytes=%d", fixture.ScaleQuota))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	p, err := etcdproc.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	// Ready as a step is: the cluster (3.6+: and storage) version at v's minor.
	if _, err := p.WaitMinor(ctx, versionfile.MinorString(versionfile.MustVersion(v))); err != nil {
		b.Fatal(err)
	}
	c, err := p.Client()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.WaitWrite(ctx, c); err != nil {
		b.Fatal(err)
	}
	// Stopped with the client still open, as a step stops its etcd: closing it
	// first often costs etcd 3.6+ its 5 s server-shutdown timeout.
	stopAt := time.Now()
	if _, err := p.Stop(); err != nil {
		b.Fatal(err)
	}
	c.Close()
	return float64(time.Since(start).Milliseconds()), float64(time.Since(stopAt).Milliseconds())
}

// scaleConvert converts n v2 keys written by etcd 3.4.13 with our converter and
// with `etcdctl-3.4.13 migrate`, one run each, on copies of the same data.
func scaleConvert(b *testing.B, binDir, cache string, n int) {
	opts := fixture.Etcd2BenchOptions()
	// etcd 2/3.4 saves its whole v2 store as JSON every --snapshot-count entries:
	// at 10,000 the writing of 1M keys would take most of an hour.
	opts.Keys, opts.SnapshotCount = n, 250000
	// Saving a store of 500k keys blocks applies past the 5 s request timeout,
	// which grows with the election timeout.
	opts.EtcdArgs = []string{"--heartbeat-interval=500", "--election-timeout=10000"}
	pristine := filepath.Join(cache, fmt.Sprintf("v2-%d", n))
	if _, err := os.Stat(filepath.Join(pristine, "version.txt")); err != nil {
		os.RemoveAll(pristine)
		t0 := time.Now()
		if err := fixture.GenerateEtcd2(binDir, fixture.Etcd2Version, opts, pristine, etcdtest.FreePortPair(b)); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("\netcd %s wrote %d v2 keys in %v\n", fixture.Etcd2Version, n, time.Since(t0).Round(time.Second))
	}
	if envInt("SCALE_RUNS", 3) == 0 {
		return // generate the data only
	}
	dir := etcdtest.CopyDir(b, pristine)
	dropCaches()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), convertDirEnv+"="+dir)
	ot, om := measured(b, cmd)
	os.RemoveAll(dir)
	dir = etcdtest.CopyDir(b, pristine)
	dropCaches()
	cmd = exec.Command(filepath.Join(binDir, "etcdctl-3.4.13"), "migrate", "--data-dir="+dir)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	at, am := measured(b, cmd)
	os.RemoveAll(dir)
	fmt.Printf("\netcd2 -> etcd3 conversion of %d v2 keys (%s of data dir), one run each:\n", n, mib(dirSize(b, pristine)))
	fmt.Printf("  ours (v2tov3.Convert):  %7.0f ms  %7.1f MiB peak RSS\n", float64(ot.Milliseconds()), om)
	fmt.Printf("  etcdctl-3.4.13 migrate: %7.0f ms  %7.1f MiB peak RSS\n", float64(at.Milliseconds()), am)
	fmt.Printf("  %.1fx faster (goal >= 4x), %.2f of its peak RSS (goal <= 0.20)\n", at.Seconds()/ot.Seconds(), om/am)
}

// dropCaches empties the page cache when the benchmark may (root), so each run
// reads its data from disk as a restarted node would; otherwise runs are warm.
func dropCaches() {
	syscall.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

func logLines(out []byte) []scaleStep {
	var res []scaleStep
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l scaleStep
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			res = append(res, l)
		}
	}
	return res
}

// treePeak is the peak memory of migrate and of migrate plus its children, MiB.
type treePeak struct{ ownRSS, ownAnon, treeRSS, treeAnon float64 }

type sampledRun struct {
	out     []byte
	wall    float64 // ms
	written int64   // bytes written by the process and its waited-for children
	peak    treePeak
}

// runSampled runs cmd, sampling every 20 ms the VmRSS and RssAnon of cmd's process
// and of its children (the step etcds), and reads the bytes written from the
// children rusage of this process (migrate waits for its etcds, so theirs is in).
func runSampled(b *testing.B, cmd *exec.Cmd) sampledRun {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var r sampledRun
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		own := procMem(cmd.Process.Pid)
		tree := own
		for _, c := range childPIDs(cmd.Process.Pid) {
			m := procMem(c)
			tree.rss, tree.anon = tree.rss+m.rss, tree.anon+m.anon
		}
		r.peak.ownRSS, r.peak.ownAnon = max(r.peak.ownRSS, own.rss), max(r.peak.ownAnon, own.anon)
		r.peak.treeRSS, r.peak.treeAnon = max(r.peak.treeRSS, tree.rss), max(r.peak.treeAnon, tree.anon)
		select {
		case err := <-done:
			r.wall = float64(time.Since(start).Milliseconds())
			if err != nil {
				b.Fatalf("%v\n%s", err, out.String())
			}
			var after syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
			r.written = (after.Oublock - before.Oublock) * 512
			r.out = []byte(out.String())
			return r
		case <-tick.C:
		}
	}
}

type mem struct{ rss, anon float64 }

// procMem reads VmRSS and RssAnon (MiB) of pid.
func procMem(pid int) mem {
	var m mem
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(l, ":")
		kib, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			m.rss = kib / 1024
		case "RssAnon":
			m.anon = kib / 1024
		}
	}
	return m
}

// childPIDs lists the children of pid (each thread lists those it started).
func childPIDs(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var res []int
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(raw)) {
			if n, err := strconv.Atoi(w); err == nil {
				res = append(res, n)
			}
		}
	}
	return res
}

// scaleBackup times backup.Make of the data set on this machine's file system
// (a copy: no reflinks on ext4) next to `cp -a --sparse=always` and a sync, three
// runs each alternating, from a cold cache where the benchmark may drop it; then
// on an XFS with reflinks on a loop device (root and xfsprogs), where it clones.
func scaleBackup(b *testing.B, pristine string) {
	var ours, cp []float64
	var copied int64
	for i := 0; i < 3; i++ {
		dir := etcdtest.CopyDir(b, pristine)
		dropCaches()
		t0 := time.Now()
		res, err := backup.Make(context.Background(), dir, backup.Record{Before: "3.4.13/etcd3", Target: "3.7.3/etcd3"})
		if err != nil {
			b.Fatal(err)
		}
		ours, copied = append(ours, time.Since(t0).Seconds()), res.Bytes
		os.RemoveAll(backup.Path(dir))
		dropCaches()
		t0 = time.Now()
		if out, err := exec.Command("sh", "-c", `cp -a --sparse=always "$0" "$0.cp" && sync`, dir).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		cp = append(cp, time.Since(t0).Seconds())
		os.RemoveAll(dir + ".cp")
		os.RemoveAll(dir)
	}
	fmt.Printf("\nbackup of the data set (%s of data), median of 3, cold cache:\n", mib(copied))
	fmt.Printf("  backup.Make (copy): %6.2f s, %4.0f MB/s; cp -a --sparse=always + sync: %6.2f s, %4.0f MB/s\n",
		median(ours), float64(copied)/1e6/median(ours), median(cp), float64(copied)/1e6/median(cp))
	b.Run("reflink", func(b *testing.B) {
		mnt := etcdtest.MountXFS(b, 3*dirSize(b, pristine)+1<<30)
		dir := filepath.Join(mnt, "data")
		if out, err := exec.Command("cp", "-a", pristine, dir).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		var st syscall.Statfs_t
		_ = syscall.Statfs(mnt, &st)
		free := st.Bfree
		t0 := time.Now()
		res, err := backup.Make(context.Background(), dir, backup.Record{Before: "3.4.13/etcd3", Target: "3.7.3/etcd3"})
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		_ = syscall.Statfs(mnt, &st)
		fmt.Printf("  on XFS (reflink=1, loop device): %d of %d files cloned (%s), %s copied, %v; the file system's used space grew by %s\n",
			res.Cloned, res.Files, mib(res.ClonedBytes), mib(res.Bytes), took.Round(time.Millisecond), mib(int64(free-st.Bfree)*st.Bsize))
	})
}
