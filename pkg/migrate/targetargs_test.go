package migrate

import "testing"

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
