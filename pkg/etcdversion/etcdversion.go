// Package etcdversion is the one table of what each etcd minor can do that
// migrate relies on: its APIs, what it records, its flags. Every version gate in
// migrate asks it, so a newly bundled minor (older or newer) is one row here.
package etcdversion

import (
	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// Caps is what one etcd minor supports.
type Caps struct {
	// V2API: the server can serve the v2 API (--enable-v2), so etcd2 storage can
	// be served and the v2 store written; etcd 3.6 removed it.
	V2API bool
	// V2WithoutFlag: the v2 API is always on and there is no --enable-v2 flag
	// (etcd 2.x to 3.1; 3.2 added the flag).
	V2WithoutFlag bool
	// V2StoreContent: the server loads a v2 store that holds keys; 3.6+ refuses to
	// start on one (only membership may remain).
	V2StoreContent bool
	// StorageVersion: the backend records a storage version and /version reports
	// it (3.6+); the data is at a minor only when it moved too.
	StorageVersion bool
	// DowngradeFrom: the server can lower the cluster to the previous minor with
	// the downgrade API (3.6+; 3.5's API cannot reach 3.4, whose data format it
	// does not know).
	DowngradeFrom bool
	// DowngradeStatus: the status response reports the downgrade job (3.6+);
	// older servers only log when their monitor ends it.
	DowngradeStatus bool
	// DowngradeCheckTimeFlag names the flag that sets how often the downgrade
	// monitor runs ("" when the minor has no monitor).
	DowngradeCheckTimeFlag string
	// TermInBackend: every apply records the raft term in the backend (3.5+).
	TermInBackend bool
	// ClusterVersionInBackend: the backend records the cluster version (3.4+).
	ClusterVersionInBackend bool
	// ZapLoggerFlag: the server logs through capnslog unless given --logger=zap
	// (3.4); 3.5+ always logs JSON lines through zap.
	ZapLoggerFlag bool
	// Etcdutl: the release ships etcdutl (3.5+) for offline work.
	Etcdutl bool
	// RaftAppliedIndex: the status response reports the applied index (3.4+);
	// older servers report the raft index only.
	RaftAppliedIndex bool
	// MembershipInBackend: the backend's members bucket is the membership the
	// server goes by (3.6+); older servers go by the v2 store's, and their
	// backend may keep a member a snapshot restore replaced.
	MembershipInBackend bool
	// PaddedWAL: the server reads WAL frames padded to 8 bytes, the only format
	// etcd's wal package writes today (3.0+); 2.x panics on them and needs the
	// unpadded frame (pkg/legacywal).
	PaddedWAL bool
	// UnsyncedFreelist: the server's bolt opens a db whose freelist is not
	// written (bbolt's NoFreelistSync, which etcd 3.4+ and its packages use);
	// etcd 3.0's boltdb/bolt 1.3.0 panics on one (index out of range).
	UnsyncedFreelist bool
	// V3Backend: the server keeps a v3 backend (member/snap/db) next to the v2
	// store (3.0+); etcd 2.x has none.
	V3Backend bool
}

// table holds one row per bundled minor, from etcd's release notes and measured
// with the bundled binaries.
var table = map[string]Caps{
	"3.4": {PaddedWAL: true, UnsyncedFreelist: true, V3Backend: true, V2API: true, V2StoreContent: true, ClusterVersionInBackend: true, ZapLoggerFlag: true, RaftAppliedIndex: true},
	"3.5": {PaddedWAL: true, UnsyncedFreelist: true, V3Backend: true, V2API: true, V2StoreContent: true, ClusterVersionInBackend: true, TermInBackend: true, Etcdutl: true, RaftAppliedIndex: true,
		DowngradeCheckTimeFlag: "--experimental-downgrade-check-time"},
	"3.6": {PaddedWAL: true, UnsyncedFreelist: true, V3Backend: true, MembershipInBackend: true, StorageVersion: true, DowngradeFrom: true, DowngradeStatus: true, ClusterVersionInBackend: true, TermInBackend: true, Etcdutl: true, RaftAppliedIndex: true,
		DowngradeCheckTimeFlag: "--downgrade-check-time"},
	"3.7": {PaddedWAL: true, UnsyncedFreelist: true, V3Backend: true, MembershipInBackend: true, StorageVersion: true, DowngradeFrom: true, DowngradeStatus: true, ClusterVersionInBackend: true, TermInBackend: true, Etcdutl: true, RaftAppliedIndex: true,
		DowngradeCheckTimeFlag: "--downgrade-check-time"},
}

// newest and oldest bound the table: a newer minor is taken to be like the newest
// row; an older one (not bundled yet) to serve the v2 API and nothing the table
// lists from 3.4 on.
const newest, oldest = "3.7", "3.4"

// For returns the capabilities of the minor of v.
func For(v *version.Version) Caps {
	m := versionfile.MinorString(v)
	if c, ok := table[m]; ok {
		return c
	}
	if versionfile.CompareMinor(v, versionfile.MustVersion(newest+".0")) > 0 {
		return table[newest]
	}
	// Before 3.4: etcd 2.x and the first 3.x minors.
	return Caps{V2API: true, V2StoreContent: true,
		V2WithoutFlag:    versionfile.CompareMinor(v, versionfile.MustVersion("3.2.0")) < 0,
		PaddedWAL:        versionfile.Major(v) >= 3,
		UnsyncedFreelist: versionfile.CompareMinor(v, versionfile.MustVersion("3.1.0")) >= 0,
		V3Backend:        versionfile.Major(v) >= 3}
}

// Of is For of a "major.minor.patch" literal.
func Of(s string) Caps { return For(versionfile.MustVersion(s)) }
