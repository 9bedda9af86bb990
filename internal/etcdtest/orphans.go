package etcdtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// WaitChildrenGone checks, right after migrate was killed and reaped, that every
// process naming dir on its command line (its etcd, an etcdctl snapshot restore)
// is dying, then waits for them to be gone. The kernel sends a child its
// Pdeathsig while migrate exits, before migrate can be reaped, so a child that is
// neither signalled nor exiting by now has outlived migrate: a rerun would race it
// in the same data dir. That fails the test at once, not after it finished its work.
func WaitChildrenGone(t testing.TB, dir string, timeout time.Duration) {
	t.Helper()
	for _, p := range processesNaming(dir) {
		if !p.dying {
			t.Fatalf("process %s outlived migrate (no SIGKILL pending, not exiting): %s", p.pid, p.cmdline)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		ps := processesNaming(dir)
		if len(ps) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %s still running %v after migrate was killed: %s", ps[0].pid, timeout, ps[0].cmdline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type process struct {
	pid, cmdline string
	dying        bool
}

// processesNaming lists the processes whose command line contains dir (a zombie's
// reads empty, so zombies are not listed).
func processesNaming(dir string) []process {
	self := strconv.Itoa(os.Getpid())
	entries, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []process
	for _, e := range entries {
		pdir := filepath.Dir(e)
		pid := filepath.Base(pdir)
		b, err := os.ReadFile(e)
		if pid == self || err != nil || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		out = append(out, process{pid: pid, cmdline: strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "),
			dying: dying(pdir)})
	}
	return out
}

// dying: SIGKILL pending (bit 9 of SigPnd/ShdPnd in status), or PF_EXITING
// (0x4) in stat's flags field, or a zombie. A process that vanished meanwhile
// counts as dying.
func dying(pdir string) bool {
	status, err := os.ReadFile(filepath.Join(pdir, "status"))
	if err != nil {
		return true
	}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(l, ":")
		if k != "SigPnd" && k != "ShdPnd" {
			continue
		}
		if mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && mask&(1<<8) != 0 {
			return true
		}
	}
	stat, err := os.ReadFile(filepath.Join(pdir, "stat"))
	if err != nil {
		return true
	}
	// pid (comm) state ppid pgrp session tty_nr tpgid flags ...: after the comm's
	// closing parenthesis, state is field 0 and flags field 6.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 7 {
		return true
	}
	if f[0] == "Z" || f[0] == "X" {
		return true
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err != nil || flags&0x4 != 0
}
