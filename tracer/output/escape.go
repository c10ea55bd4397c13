// SPDX-License-Identifier: Apache-2.0

package output

import (
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendTextSafe appends b for a terminal: printable ASCII as is, anything
// else (ESC, control bytes, space, non-ASCII, invalid UTF-8) as \xNN, and
// the backslash doubled, so a process name can neither move the cursor nor
// break the columns, and the original bytes can be read back.
func AppendTextSafe[S ~string | ~[]byte](dst []byte, b S) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c > ' ' && c < 0x7f:
			dst = append(dst, c)
		default:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return dst
}

// AppendJSONString appends b as a JSON string. Control characters are
// \u-escaped; invalid UTF-8 becomes U+FFFD, as encoding/json does.
func AppendJSONString[S ~string | ~[]byte](dst []byte, b S) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(b[i:min(i+utf8.UTFMax, len(b))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, string(b[i:i+size])...)
		}
		i += size
	}
	return append(dst, '"')
}
