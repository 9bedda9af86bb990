package backup

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// isMountPoint says whether the dir real (absolute, symlinks resolved; fi its
// stat) is a mount point.
func isMountPoint(real string, fi os.FileInfo) bool {
	if pfi, err := os.Stat(filepath.Dir(real)); err == nil {
		st, ok1 := fi.Sys().(*syscall.Stat_t)
		pst, ok2 := pfi.Sys().(*syscall.Stat_t)
		if ok1 && ok2 && st.Dev != pst.Dev {
			return true
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": the
		// fifth field is the mount point, with space, tab, newline and backslash
		// escaped as octal.
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == real {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			n := 0
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				n = n*8 + int(c-'0')
			}
			if ok {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
