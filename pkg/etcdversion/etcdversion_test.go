package etcdversion

import (
	"testing"
)

func TestTable(t *testing.T) {
	tests := []struct {
		v    string
		want Caps
	}{
		{"3.4.13", table["3.4"]},
		{"3.5.0", table["3.5"]},
		{"3.7.3", table["3.7"]},
		{"3.9.1", table["3.7"]},
		{"2.2.5", Caps{V2API: true, V2StoreContent: true, V2WithoutFlag: true}},
		{"3.0.17", Caps{V2API: true, V2StoreContent: true, V2WithoutFlag: true, V3Backend: true, PaddedWAL: true}},
		{"3.1.20", Caps{V2API: true, V2StoreContent: true, V2WithoutFlag: true, V3Backend: true, PaddedWAL: true, UnsyncedFreelist: true}},
		{"3.2.32", Caps{V2API: true, V2StoreContent: true, V3Backend: true, PaddedWAL: true, UnsyncedFreelist: true}},
	}
	for _, tc := range tests {
		if got := Of(tc.v); got != tc.want {
			t.Errorf("Of(%s) = %+v, want %+v", tc.v, got, tc.want)
		}
	}
	// The gates migrate relies on, each at its boundary.
	if !Of("3.5.35").V2StoreContent || Of("3.6.0").V2StoreContent {
		t.Error("the v2 store's content ends with 3.5")
	}
	if Of("2.3.8").PaddedWAL || !Of("3.0.0").PaddedWAL || Of("2.3.8").V3Backend || !Of("3.0.0").V3Backend || Of("3.0.17").UnsyncedFreelist || !Of("3.1.0").UnsyncedFreelist {
		t.Error("padded WAL frames and the v3 backend from 3.0 on; a db without a freelist from 3.1 on")
	}
	if Of("3.5.35").DowngradeFrom || !Of("3.6.0").DowngradeFrom {
		t.Error("the downgrade API starts with 3.6 (3.5 cannot reach 3.4)")
	}
	if Of("3.5.35").StorageVersion || !Of("3.6.16").StorageVersion {
		t.Error("the storage version starts with 3.6")
	}
	if Of("3.4.13").DowngradeCheckTimeFlag != "" || Of("3.5.1").DowngradeCheckTimeFlag != "--experimental-downgrade-check-time" || Of("3.6.1").DowngradeCheckTimeFlag != "--downgrade-check-time" {
		t.Error("downgrade check time flags")
	}
	if !Of("3.4.13").ZapLoggerFlag || Of("3.5.0").ZapLoggerFlag || Of("3.4.13").TermInBackend || !Of("3.5.0").TermInBackend {
		t.Error("3.4 vs 3.5")
	}
}
