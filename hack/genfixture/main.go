// Command genfixture writes a real etcd3 data dir (or, with -storage etcd2, an
// etcd2 data dir written through the v2 API) with a bundled etcd binary (see
// internal/fixture) and packs it as a .tar.gz (WAL segments are sparse 64 MiB files,
// so tar runs with --sparse).
//
//	go run ./hack/genfixture -bin-dir _output/bin -version 3.4.13 -keys 2400 -out testdata/etcd3-3.4.13.tar.gz
//	go run ./hack/genfixture -bin-dir _output/bin -version 3.4.13 -storage etcd2 -keys 300 -out testdata/etcd2-3.4.13.tar.gz
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
)

func main() {
	binDir := flag.String("bin-dir", "_output/bin", "directory with etcd-<version>")
	ver := flag.String("version", "3.4.13", "etcd version that writes the data")
	keys := flag.Int("keys", 2400, "keys to put")
	valueSize := flag.Int("value-size", 300, "mean value size in bytes")
	out := flag.String("out", "", "output .tar.gz (required)")
	port := flag.Int("port", 23790, "client port of the generating etcd (peer: port+1)")
	storage := flag.String("storage", "etcd3", "etcd3 (v3 API writes) or etcd2 (v2 API writes, etcd 3.4 only)")
	eventFraction := flag.Float64("event-fraction", 0, "etcd2: share of the keys written as events with TTLs of 3600..7200s")
	writers := flag.Int("writers", 16, "etcd2: concurrent HTTP writers")
	snapshotCount := flag.Int("snapshot-count", 100, "etcd2: etcd --snapshot-count")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	if *storage != "etcd3" && *storage != "etcd2" {
		log.Fatalf("-storage must be etcd3 or etcd2, not %q", *storage)
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *storage == "etcd3" {
		for _, name := range []string{"event-fraction", "writers", "snapshot-count"} {
			if set[name] {
				log.Fatalf("-%s only applies to -storage etcd2", name)
			}
		}
	}
	work, err := os.MkdirTemp("", "genfixture-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	dataDir := filepath.Join(work, "data")
	start := time.Now()
	if *storage == "etcd2" {
		opts := fixture.Etcd2Options{Keys: *keys, EventFraction: *eventFraction, Writers: *writers, SnapshotCount: *snapshotCount}
		if set["value-size"] { // else the etcd2 default, 600
			opts.ValueSize = *valueSize
		}
		err = fixture.GenerateEtcd2(*binDir, *ver, opts, dataDir, *port)
	} else {
		err = fixture.Generate(*binDir, *ver, *keys, *valueSize, dataDir, *port)
	}
	if err != nil {
		log.Fatal(err)
	}
	took := time.Since(start)
	abs, err := filepath.Abs(*out)
	if err != nil {
		log.Fatal(err)
	}
	tar := exec.Command("tar", "--sparse", "--numeric-owner", "--owner=0", "--group=0", "--mtime=2026-01-01", "-czf", abs, "-C", dataDir, ".")
	tar.Stderr = os.Stderr
	if err := tar.Run(); err != nil {
		log.Fatalf("tar: %v", err)
	}
	fmt.Printf("wrote %s (%d puts, etcd %s, %s, generated in %v)\n", *out, *keys, *ver, *storage, took.Round(time.Millisecond))
}
