package versionfile

import (
	"strings"
	"testing"
)

func TestParsePairValid(t *testing.T) {
	tests := []struct {
		in      string
		version string
		storage Storage
		str     string
		major   int
		minor   int
	}{
		{"3.5.35/etcd3", "3.5.35", StorageEtcd3, "3.5.35/etcd3", 3, 5},
		{"2.2.1/etcd2", "2.2.1", StorageEtcd2, "2.2.1/etcd2", 2, 2},
		{"3.0.17/etcd2", "3.0.17", StorageEtcd2, "3.0.17/etcd2", 3, 0},
		{"2.0.0/etcd2", "2.0.0", StorageEtcd2, "2.0.0/etcd2", 2, 0},
		{"3.0.0/etcd3", "3.0.0", StorageEtcd3, "3.0.0/etcd3", 3, 0},
		{"3.5.35/etcd3\n", "3.5.35", StorageEtcd3, "3.5.35/etcd3", 3, 5},
		{"  3.6.16/etcd3  \n", "3.6.16", StorageEtcd3, "3.6.16/etcd3", 3, 6},
		{"\t3.4.13/etcd3\r\n", "3.4.13", StorageEtcd3, "3.4.13/etcd3", 3, 4},
		{"3.10.0/etcd3", "3.10.0", StorageEtcd3, "3.10.0/etcd3", 3, 10},
		{"4.0.0/etcd3", "4.0.0", StorageEtcd3, "4.0.0/etcd3", 4, 0},
		{"9999.9999.9999/etcd3", "9999.9999.9999", StorageEtcd3, "9999.9999.9999/etcd3", 9999, 9999},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePair(tc.in)
			if err != nil {
				t.Fatalf("ParsePair(%q): unexpected error: %v", tc.in, err)
			}
			if got := p.Version.String(); got != tc.version {
				t.Errorf("Version = %q, want %q", got, tc.version)
			}
			if p.Storage != tc.storage {
				t.Errorf("Storage = %q, want %q", p.Storage, tc.storage)
			}
			if got := p.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			if p.Major() != tc.major || p.Minor() != tc.minor {
				t.Errorf("Major/Minor = %d/%d, want %d/%d", p.Major(), p.Minor(), tc.major, tc.minor)
			}
			// Round trip: the String() form parses back to an equal pair.
			again, err := ParsePair(p.String())
			if err != nil {
				t.Fatalf("ParsePair(String()=%q): %v", p.String(), err)
			}
			if !again.Equal(p) || again.String() != p.String() {
				t.Errorf("round trip: got %v, want %v", again, p)
			}
			if got := MustPair(tc.in); !got.Equal(p) {
				t.Errorf("MustPair(%q) = %v, want %v", tc.in, got, p)
			}
		})
	}
}

func TestParsePairInvalid(t *testing.T) {
	long := strings.Repeat("3", 1000)
	longStorage := "3.5.35/" + strings.Repeat("e", 993)
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error message
	}{
		{"empty", "", []string{"empty version: want <major.minor.patch>/<etcd2|etcd3>, e.g. 3.5.35/etcd3"}},
		{"only whitespace", " \n\t ", []string{"empty version:"}},
		{"two segments", "3.5/etcd3", []string{`invalid version pair "3.5/etcd3": invalid etcd version "3.5": want major.minor.patch, e.g. 3.5.35`}},
		{"no storage", "3.5.35", []string{`invalid version pair "3.5.35": missing /<etcd2|etcd3>, e.g. 3.5.35/etcd3`}},
		{"no storage, trailing newline trimmed in message", "3.5.35\n", []string{`invalid version pair "3.5.35": missing /`}},
		{"unknown storage", "3.5.35/etcd4", []string{`invalid version pair "3.5.35/etcd4": unknown storage "etcd4": use etcd2 or etcd3`}},
		{"v prefix", "v3.5.35/etcd3", []string{`invalid version pair "v3.5.35/etcd3": invalid etcd version "v3.5.35"`}},
		{"prerelease", "3.5.35-rc.1/etcd3", []string{`invalid etcd version "3.5.35-rc.1"`}},
		{"build metadata", "3.5.35+abc/etcd3", []string{`invalid etcd version "3.5.35+abc"`}},
		{"leading zero major", "03.5.35/etcd3", []string{`invalid etcd version "03.5.35"`}},
		{"leading zero patch", "3.5.035/etcd3", []string{`invalid etcd version "3.5.035"`}},
		{"upper case storage", "3.5.35/ETCD3", []string{`unknown storage "ETCD3"`}},
		{"extra path segment", "3.5.35/etcd3/x", []string{`invalid version pair "3.5.35/etcd3/x": unknown storage "etcd3/x"`}},
		{"etcd2-era version with etcd3 storage", "2.3.7/etcd3", []string{`invalid version pair "2.3.7/etcd3": etcd 2.3.7 has no etcd3 storage (it starts with 3.0.0)`}},
		{"pre-2.0 version", "1.0.0/etcd2", []string{`invalid version pair "1.0.0/etcd2": etcd versions start at 2.0.0`}},
		{"zero major", "0.4.6/etcd2", []string{`invalid version pair "0.4.6/etcd2": etcd versions start at 2.0.0`}},
		{"space before slash", "3.5.35 /etcd3", []string{`invalid version pair "3.5.35 /etcd3": invalid etcd version "3.5.35 "`}},
		{"space after slash", "3.5.35/ etcd3", []string{`unknown storage " etcd3"`}},
		{"empty segment", "3..35/etcd3", []string{`invalid etcd version "3..35"`}},
		{"empty version", "/etcd3", []string{`invalid version pair "/etcd3": invalid etcd version ""`}},
		{"empty storage", "3.5.35/", []string{`invalid version pair "3.5.35/": unknown storage ""`}},
		{"four segments", "3.5.35.1/etcd3", []string{`invalid etcd version "3.5.35.1"`}},
		{"segment too large", "10000.0.0/etcd3", []string{`invalid etcd version "10000.0.0"`}},
		{"negative", "-3.5.35/etcd3", []string{`invalid etcd version "-3.5.35"`}},
		{"two lines", "3.5.35\n3.6.16/etcd3", []string{`invalid etcd version "3.5.35\n3.6.16"`}},
		{"binary junk", "\x00\x01", []string{`invalid version pair "\x00\x01": missing /`}},
		{"binary junk with slash", "\x00/\x01", []string{`invalid etcd version "\x00"`}},
		{"1000 chars without slash", long, []string{`invalid version pair "` + long + `": missing /`}},
		{"1000 chars storage", longStorage, []string{`unknown storage "` + strings.Repeat("e", 993) + `"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePair(tc.in)
			if err == nil {
				t.Fatalf("ParsePair(%q) = %v, want error", tc.in, p)
			}
			if p.Version != nil || p.Storage != "" {
				t.Errorf("ParsePair(%q) returned non-zero pair %#v with error", tc.in, p)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParsePair(%q) error = %q, want it to contain %q", tc.in, err, w)
				}
			}
		})
	}
}

func TestMustPairPanics(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("MustPair(\"3.5/etcd3\") did not panic")
		}
		err, ok := r.(error)
		if !ok || !strings.Contains(err.Error(), `invalid etcd version "3.5"`) {
			t.Fatalf("panic value = %v, want the ParsePair error", r)
		}
	}()
	MustPair("3.5/etcd3")
}

func TestMustVersionPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal(`MustVersion("v3.5.0") did not panic`)
		}
	}()
	MustVersion("v3.5.0")
}

func TestParseStorage(t *testing.T) {
	for _, s := range []string{"etcd2", "etcd3"} {
		got, err := ParseStorage(s)
		if err != nil || string(got) != s {
			t.Errorf("ParseStorage(%q) = %q, %v; want %q, nil", s, got, err, s)
		}
	}
	for _, s := range []string{"", "etcd", "etcd4", "ETCD3", " etcd3", "v3"} {
		got, err := ParseStorage(s)
		if err == nil {
			t.Errorf("ParseStorage(%q) = %q, want error", s, got)
			continue
		}
		want := "unknown storage " + `"` + s + `"` + ": use etcd2 or etcd3"
		if err.Error() != want {
			t.Errorf("ParseStorage(%q) error = %q, want %q", s, err, want)
		}
	}
}

func TestCompareMinor(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"3.4.13", "3.5.0", -1},
		{"3.5.0", "3.4.13", 1},
		{"3.5.0", "3.5.35", 0},
		{"3.5.35", "3.5.0", 0},
		{"3.5.35", "3.5.35", 0},
		{"4.0.0", "3.9.9", 1},
		{"3.9.9", "4.0.0", -1},
		{"3.10.0", "3.9.0", 1},
		{"3.9.0", "3.10.0", -1},
		{"2.3.7", "3.0.0", -1},
		{"3.0.0", "2.3.7", 1},
		{"2.2.1", "2.3.7", -1},
		{"3.6.16", "3.7.3", -1},
		{"3.7.3", "3.6.16", 1},
		{"10.0.0", "9.99.0", 1},
	}
	for _, tc := range tests {
		if got := CompareMinor(MustVersion(tc.a), MustVersion(tc.b)); got != tc.want {
			t.Errorf("CompareMinor(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestMinorString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"3.5.35", "3.5"},
		{"3.4.13", "3.4"},
		{"3.10.0", "3.10"},
		{"2.2.1", "2.2"},
		{"4.0.0", "4.0"},
	}
	for _, tc := range tests {
		if got := MinorString(MustVersion(tc.in)); got != tc.want {
			t.Errorf("MinorString(%s) = %q, want %q", tc.in, got, tc.want)
		}
		p := Pair{Version: MustVersion(tc.in), Storage: StorageEtcd3}
		if got := p.MinorString(); got != tc.want {
			t.Errorf("Pair{%s}.MinorString() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPairEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b Pair
		want bool
	}{
		{"same", MustPair("3.5.35/etcd3"), MustPair("3.5.35/etcd3"), true},
		{"same, parsed with whitespace", MustPair("3.5.35/etcd3"), MustPair(" 3.5.35/etcd3\n"), true},
		{"other patch", MustPair("3.5.35/etcd3"), MustPair("3.5.34/etcd3"), false},
		{"other minor", MustPair("3.5.35/etcd3"), MustPair("3.6.35/etcd3"), false},
		{"other storage", MustPair("3.0.17/etcd2"), MustPair("3.0.17/etcd3"), false},
		{"nil version left", Pair{Storage: StorageEtcd3}, MustPair("3.5.35/etcd3"), false},
		{"nil version right", MustPair("3.5.35/etcd3"), Pair{Storage: StorageEtcd3}, false},
		{"both zero", Pair{}, Pair{}, false},
	}
	for _, tc := range tests {
		if got := tc.a.Equal(tc.b); got != tc.want {
			t.Errorf("%s: %v.Equal(%v) = %v, want %v", tc.name, tc.a, tc.b, got, tc.want)
		}
		if got := tc.b.Equal(tc.a); got != tc.want {
			t.Errorf("%s (swapped): %v.Equal(%v) = %v, want %v", tc.name, tc.b, tc.a, got, tc.want)
		}
	}
}

func TestPairStringZero(t *testing.T) {
	if got := (Pair{}).String(); got != "<none>" {
		t.Errorf("Pair{}.String() = %q, want %q", got, "<none>")
	}
	if got := (Pair{Storage: StorageEtcd3}).String(); got != "<none>" {
		t.Errorf("Pair{Storage: etcd3}.String() = %q, want %q", got, "<none>")
	}
}
