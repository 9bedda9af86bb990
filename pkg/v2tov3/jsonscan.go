package v2tov3

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// jsonScanner reads JSON token by token from a stream. It knows just enough JSON for
// the v2 store snapshot (encoding/json output), so a snapshot of any size is read
// with a small, fixed buffer instead of being held and unmarshaled whole.
type jsonScanner struct {
	r   *bufio.Reader
	off int64  // bytes consumed, for error messages
	raw []byte // the last string's raw bytes; valid until the next call
}

func newJSONScanner(r io.Reader) *jsonScanner {
	return &jsonScanner{r: bufio.NewReaderSize(r, 256<<10)}
}

func (j *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("v2 store JSON at byte %d: %s", j.off, fmt.Sprintf(format, args...))
}

func (j *jsonScanner) readByte() (byte, error) {
	c, err := j.r.ReadByte()
	if err == io.EOF {
		return 0, j.errorf("unexpected end")
	}
	if err != nil {
		return 0, err
	}
	j.off++
	return c, nil
}

// peek returns the next byte that is not white space without consuming it.
func (j *jsonScanner) peek() (byte, error) {
	for {
		c, err := j.readByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		j.off--
		return c, j.r.UnreadByte()
	}
}

func (j *jsonScanner) expect(want byte) error {
	c, err := j.peek()
	if err != nil {
		return err
	}
	if c != want {
		return j.errorf("want %q, found %q", want, c)
	}
	_, err = j.readByte()
	return err
}

// consumeIf consumes the next byte when it is c.
func (j *jsonScanner) consumeIf(c byte) (bool, error) {
	got, err := j.peek()
	if err != nil || got != c {
		return false, err
	}
	_, err = j.readByte()
	return true, err
}

// rawString reads a string and returns its bytes between the quotes, escapes
// intact. The slice is valid until the next call.
func (j *jsonScanner) rawString() ([]byte, error) {
	if err := j.expect('"'); err != nil {
		return nil, err
	}
	j.raw = j.raw[:0]
	for {
		chunk, err := j.r.ReadSlice('"')
		j.off += int64(len(chunk))
		j.raw = append(j.raw, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			return nil, j.errorf("unterminated string")
		}
		if err != nil {
			return nil, err
		}
		// The quote ends the string unless an odd run of backslashes escapes it.
		n := len(j.raw) - 1
		bs := 0
		for i := n - 1; i >= 0 && j.raw[i] == '\\'; i-- {
			bs++
		}
		if bs%2 == 0 {
			j.raw = j.raw[:n]
			return j.raw, nil
		}
	}
}

// uint reads a non-negative integer.
func (j *jsonScanner) uint() (uint64, error) {
	if _, err := j.peek(); err != nil {
		return 0, err
	}
	var digits [20]byte
	n := 0
	for {
		c, err := j.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if c < '0' || c > '9' || n == len(digits) {
			if err := j.r.UnreadByte(); err != nil {
				return 0, err
			}
			break
		}
		digits[n] = c
		n++
		j.off++
	}
	v, err := strconv.ParseUint(string(digits[:n]), 10, 64)
	if err != nil {
		return 0, j.errorf("want an unsigned integer: %v", err)
	}
	return v, nil
}

// skip consumes one value of any kind.
func (j *jsonScanner) skip() error {
	c, err := j.peek()
	if err != nil {
		return err
	}
	switch c {
	case '"':
		_, err := j.rawString()
		return err
	case '{', '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		_, _ = j.readByte()
		if ok, err := j.consumeIf(end); ok || err != nil {
			return err
		}
		for {
			if c == '{' {
				if _, err := j.rawString(); err != nil {
					return err
				}
				if err := j.expect(':'); err != nil {
					return err
				}
			}
			if err := j.skip(); err != nil {
				return err
			}
			if ok, err := j.consumeIf(end); ok || err != nil {
				return err
			}
			if err := j.expect(','); err != nil {
				return err
			}
		}
	default: // number, true, false, null
		for {
			c, err := j.r.ReadByte()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			switch c {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j.r.UnreadByte()
			}
			j.off++
		}
	}
}

// unquote decodes the raw bytes of a JSON string (as rawString returns them),
// appending to dst. It decodes what encoding/json writes itself and hands anything
// unusual (surrogates, invalid UTF-8) to encoding/json, so the result is always
// what json.Unmarshal would give.
func unquote(dst, raw []byte) ([]byte, error) {
	start := len(dst)
	// Unescaped control characters are invalid and non-ASCII must be valid UTF-8;
	// both are rare enough to leave to encoding/json.
	utf8Checked := false
	for _, c := range raw {
		if c < 0x20 {
			return slowUnquote(dst, raw)
		}
		if c >= utf8.RuneSelf && !utf8Checked {
			if !utf8.Valid(raw) {
				return slowUnquote(dst, raw)
			}
			utf8Checked = true
		}
	}
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			// Copy the run up to the next escape in one go.
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(raw) {
			return slowUnquote(dst[:start], raw)
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+6 > len(raw) {
				return slowUnquote(dst[:start], raw)
			}
			r, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
			if err != nil || (r >= 0xD800 && r < 0xE000) {
				return slowUnquote(dst[:start], raw)
			}
			dst = utf8.AppendRune(dst, rune(r))
			i += 6
			continue
		default:
			return slowUnquote(dst[:start], raw)
		}
		i += 2
	}
	return dst, nil
}

func slowUnquote(dst, raw []byte) ([]byte, error) {
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return dst, fmt.Errorf("invalid JSON string: %w", err)
	}
	return append(dst, s...), nil
}
