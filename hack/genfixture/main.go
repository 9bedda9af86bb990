// Command genfixture writes a real etcd3 data dir with a bundled etcd binary (see
// internal/fixture) and packs it as a .tar.gz (WAL segments are sparse 64 MiB files,
// so tar runs with --sparse).
//
//	go run ./hack/genfixture -bin-dir _output/bin -version 3.4.13 -keys 2400 -out testdata/etcd3-3.4.13.tar.gz
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/etcd-migrate/etcd-migrate/internal/fixture"
)

func main() {
	binDir := flag.String("bin-dir", "_output/bin", "directory with etcd-<version>")
	ver := flag.String("version", "3.4.13", "etcd version that writes the data")
	keys := flag.Int("keys", 2400, "keys to put")
	valueSize := flag.Int("value-size", 300, "mean value size in bytes")
	out := flag.String("out", "", "output .tar.gz (required)")
	port := flag.Int("port", 23790, "client port of the generating etcd (peer: port+1)")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	work, err := os.MkdirTemp("", "genfixture-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	dataDir := filepath.Join(work, "data")
	if err := fixture.Generate(*binDir, *ver, *keys, *valueSize, dataDir, *port); err != nil {
		log.Fatal(err)
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		log.Fatal(err)
	}
	tar := exec.Command("tar", "--sparse", "--numeric-owner", "--owner=0", "--group=0", "--mtime=2026-01-01", "-czf", abs, "-C", dataDir, ".")
	tar.Stderr = os.Stderr
	if err := tar.Run(); err != nil {
		log.Fatalf("tar: %v", err)
	}
	fmt.Printf("wrote %s (%d puts, etcd %s)\n", *out, *keys, *ver)
}
