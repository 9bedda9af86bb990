// Package oldetcd smoke-tests the etcd releases before 3.4 that hack/build-etcd.sh
// builds from the pins in hack/old-etcd/: each starts, names its version, and writes
// and reads keys through v2 and (from 3.0) v3 with its own etcdctl. Behind the
// oldetcd build tag, so `make test` does not run it yet; `make test-old-etcd` does:
//
//	make old-etcd-binaries
//	ETCD_MIGRATE_BIN_DIR=$PWD/_output/bin go test -tags oldetcd -count=1 -v ./test/oldetcd/
//
// ETCD_MIGRATE_OLD_VERSIONS (space or comma separated) narrows the versions.
package oldetcd
