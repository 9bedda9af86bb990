package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEtcdErrorLine(t *testing.T) {
	for out, want := range map[string]string{
		"flag provided but not defined: -experimental-initial-corrupt-check\nUsage:\n\n  etcd [flags]\n": "flag provided but not defined: -experimental-initial-corrupt-check",
		`{"level":"info","ts":"x","caller":"etcdmain/etcd.go:63","msg":"Running: ","args":["etcd","--name","x","y"]}` + "\n" +
			`{"level":"warn","ts":"x","caller":"etcdmain/etcd.go:65","msg":"failed to verify flags","error":"\"y\" is not a valid flag"}`: `"y" is not a valid flag`,
		"2026-11-30 13:30:34.749209 E | etcdmain: error verifying flags, 'y' is not a valid flag. See 'etcd --help'.": "error verifying flags, 'y' is not a valid flag. See 'etcd --help'.",
		"": "",
	} {
		if got := etcdErrorLine(out); got != want {
			t.Errorf("etcdErrorLine(%q) = %q, want %q", out, got, want)
		}
	}
}

func TestReplacement(t *testing.T) {
	for notice, want := range map[string]string{
		"Deprecated in v3.6 and will be decommissioned in v3.7. Use '--feature-gates=InitialCorruptCheck=true' instead.": "--feature-gates=InitialCorruptCheck=true",
		"Deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead.":         "--watch-progress-notify-interval",
		"is deprecated in 3.6 and will be decommissioned in 3.7. Use --enable-distributed-tracing instead.":              "--enable-distributed-tracing",
		"Deprecated in v3.6 and will be decommissioned in v3.7. Use 'compaction-sleep-interval' instead.":                "--compaction-sleep-interval",
		"Accept etcd V2 client requests. Deprecated and to be decommissioned in v3.6.":                                   "",
	} {
		if got := replacement(notice); got != want {
			t.Errorf("replacement(%q) = %q, want %q", notice, got, want)
		}
	}
	for cause, want := range map[string]string{
		"flag provided but not defined: -no-such-flag":                          "no-such-flag",
		`invalid value "lots" for flag -quota-backend-bytes: parse error`:       "quota-backend-bytes",
		`invalid boolean value "maybe" for -peer-client-cert-auth: parse error`: "peer-client-cert-auth",
		"flag needs an argument: -name":                                         "name",
	} {
		if m := flagInError.FindStringSubmatch(cause); m == nil || m[1] != want {
			t.Errorf("flag in %q = %v, want %q", cause, m, want)
		}
	}
}

// TestEtcdErrorLineRealOutputs: the cause picked from what every bundled etcd
// really prints for a refused command line (testdata/etcd-flag-errors/<v>-<case>.txt,
// captured with `etcd-<v> <args> --version`, ETCD_* unset): an undefined flag
// (--no-such-flag), a bad value (--snapshot-count=lots) and a word that is no flag
// (--name x y). 3.4.25 prints a golang/protobuf deprecation WARNING first; 2.x-3.4
// log with capnslog, 3.5+ with zap JSON.
func TestEtcdErrorLineRealOutputs(t *testing.T) {
	versions := []string{"2.2.5", "2.3.8", "3.0.17", "3.1.20", "3.2.32", "3.3.27", "3.4.13", "3.4.25", "3.5.35", "3.6.16", "3.7.3"}
	for _, v := range versions {
		notAFlag := "error verifying flags, 'y' is not a valid flag. See 'etcd --help'."
		switch v {
		case "3.5.35":
			notAFlag = "'y' is not a valid flag"
		case "3.6.16", "3.7.3":
			notAFlag = `"y" is not a valid flag`
		}
		for c, want := range map[string]string{
			"undefined":     "flag provided but not defined: -no-such-flag",
			"invalid-value": `invalid value "lots" for flag -snapshot-count: parse error`,
			"not-a-flag":    notAFlag,
		} {
			b, err := os.ReadFile(filepath.Join("testdata", "etcd-flag-errors", v+"-"+c+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			if v == "3.4.25" && !strings.HasPrefix(string(b), "WARNING: Package ") {
				t.Errorf("%s %s: the captured output does not start with the WARNING it is kept for", v, c)
			}
			if got := etcdErrorLine(string(b)); got != want {
				t.Errorf("etcd %s, %s: picked %q, want %q", v, c, got, want)
			}
		}
	}
}
