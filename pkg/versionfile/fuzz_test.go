package versionfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// versionTxtSeeds are version.txt contents seen in the field or in tests: valid
// pairs, the Kubernetes formats, truncations (a full disk), garbage.
var versionTxtSeeds = []string{
	"3.5.35/etcd3\n", "3.4.13/etcd2", "2.2.1/etcd2\n", "3.0.17/etcd3\r\n", " 3.6.16/etcd3 \n\n",
	"", "\n", "3.4/etcd3", "3.4.13", "3.4.13/", "/etcd3", "3.4.13/etcd4", "3.4.13/ETCD3",
	"v3.4.13/etcd3", "3.4.13-rc.0/etcd3", "03.4.13/etcd3", "3.4.13/etcd3/x", "3.4.13 /etcd3",
	"2.3.7/etcd3", "1.0.0/etcd2", "0.0.0/etcd2", "9999.9999.9999/etcd3", "10000.0.0/etcd3",
	"3.4.13/etcd3\x00", "\x00\x01\xff\xfe", "3.4.1\u00a03/etcd3", "\u20283.5.0/etcd3\u2029",
	"3.5.35/etcd3\n3.6.16/etcd3\n",
}

// checkErr: an error is one line of valid UTF-8, not empty, and its size is bounded
// by the input's (it may quote the input, escaped).
func checkErr(t *testing.T, input string, err error) {
	t.Helper()
	msg := err.Error()
	if strings.TrimSpace(msg) == "" {
		t.Fatalf("empty error for %q", input)
	}
	if strings.ContainsAny(msg, "\n\r\u2028\u2029") {
		t.Fatalf("error for %q spans lines: %q", input, msg)
	}
	if !utf8.ValidString(msg) {
		t.Fatalf("error for %q is not valid UTF-8: %q", input, msg)
	}
	if max := 8*len(input) + 400; len(msg) > max {
		t.Fatalf("error for a %d-byte input is %d bytes long: %.200q", len(input), len(msg), msg)
	}
}

// checkPair: a parsed pair is valid, prints as the trimmed input and parses back
// to itself.
func checkPair(t *testing.T, input string, p Pair) {
	t.Helper()
	if p.Version == nil || (p.Storage != StorageEtcd2 && p.Storage != StorageEtcd3) || p.Major() < 2 ||
		(p.Storage == StorageEtcd3 && p.Major() < 3) {
		t.Fatalf("ParsePair(%q) = %+v: not a valid pair", input, p)
	}
	if got, want := p.String(), strings.TrimSpace(input); got != want {
		t.Fatalf("ParsePair(%q).String() = %q, want the trimmed input %q", input, got, want)
	}
	back, err := ParsePair(p.String())
	if err != nil || !back.Equal(p) {
		t.Fatalf("round trip of %q: %v, %v", p, back, err)
	}
}

// FuzzParsePair: ParsePair never panics; it either returns a pair that round-trips
// through String, or a one-line error.
func FuzzParsePair(f *testing.F) {
	for _, s := range versionTxtSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePair(s)
		if err != nil {
			checkErr(t, s, err)
			return
		}
		checkPair(t, s, p)
	})
}

// FuzzReadVersionFile: Read on any version.txt content never panics; it agrees
// with ParsePair on contents of up to 64 bytes, refuses longer ones, and every
// error is one line naming the file.
func FuzzReadVersionFile(f *testing.F) {
	for _, s := range versionTxtSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(strings.Repeat("3", 65)))
	f.Add([]byte("3.5.35/etcd3" + strings.Repeat(" ", 52)))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Read(dir)
		want, wantErr := ParsePair(string(data))
		switch {
		case len(data) > maxFileSize:
			if err == nil {
				t.Fatalf("Read accepted %d bytes", len(data))
			}
		case (err == nil) != (wantErr == nil):
			t.Fatalf("Read(%q) = %v, %v; ParsePair = %v, %v", data, p, err, want, wantErr)
		case err == nil && !p.Equal(want):
			t.Fatalf("Read(%q) = %v, ParsePair = %v", data, p, want)
		}
		if err != nil {
			// The path is part of the message, not counted against the input.
			checkErr(t, string(data)+strings.Repeat(" ", len(dir)/8+8), err)
			if !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		checkPair(t, string(data), p)
	})
}
