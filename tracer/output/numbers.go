// SPDX-License-Identifier: Apache-2.0

package output

import (
	"strconv"
	"time"
)

// The formatting every event pays for, without time.Format's layout
// parsing or strconv's float path: the timestamp and the millisecond
// figures are most of what a line costs.

// appendRFC3339Nano appends t in UTC as JSONTimeLayout does.
func appendRFC3339Nano(dst []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	if sec < 0 || sec >= 253402300800 { // outside years 1970-9999
		return t.AppendFormat(dst, JSONTimeLayout)
	}
	y, m, d := civil(sec / 86400)
	dst = appendDigits(dst, uint64(y), 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, uint64(m), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, uint64(d), 2)
	dst = append(dst, 'T')
	dst = appendClock(dst, uint64(sec%86400))
	dst = append(dst, '.')
	dst = appendDigits(dst, uint64(t.Nanosecond()), 9)
	return append(dst, 'Z')
}

// appendClock appends the seconds of a day as hh:mm:ss.
func appendClock(dst []byte, s uint64) []byte {
	dst = appendDigits(dst, s/3600, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, s/60%60, 2)
	dst = append(dst, ':')
	return appendDigits(dst, s%60, 2)
}

// appendLocalClock appends t's local time of day as 15:04:05.000000.
func appendLocalClock(dst []byte, t time.Time) []byte {
	_, off := t.Local().Zone()
	s := t.Unix() + int64(off)
	if s < 0 {
		return t.Local().AppendFormat(dst, "15:04:05.000000")
	}
	dst = appendClock(dst, uint64(s%86400))
	dst = append(dst, '.')
	return appendDigits(dst, uint64(t.Nanosecond()/1000), 6)
}

// civil returns the date of a day counted from 1970-01-01 (days >= 0):
// Howard Hinnant's civil_from_days.
func civil(days int64) (year, month, day int64) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if mp >= 10 {
		month = mp - 9
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendDigits appends n as exactly width decimal digits (n < 10^width).
func appendDigits(dst []byte, n uint64, width int) []byte {
	var b [20]byte
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return append(dst, b[:width]...)
}

// appendMillis appends d in milliseconds with three decimals, rounded to
// the nearest microsecond (half away from zero).
func appendMillis(dst []byte, d time.Duration) []byte {
	if d < 0 {
		return strconv.AppendFloat(dst, float64(d)/1e6, 'f', 3, 64)
	}
	us := (uint64(d) + 500) / 1000
	dst = strconv.AppendUint(dst, us/1000, 10)
	dst = append(dst, '.')
	return appendDigits(dst, us%1000, 3)
}
