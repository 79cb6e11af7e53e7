package subfmt

import (
	"strconv"
	"time"
)

// The @ directives pass one character to strftime(3); mosquitto_sub
// never calls setlocale, so glibc formats in the C locale. appendStrftime
// is glibc's strftime for a format of one conversion ("%" and c).

var (
	weekdays = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	months   = [12]string{"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"}
)

// appendStrftime appends what strftime's %c prints for t. A character
// glibc does not know (or a flag, width or modifier with nothing after
// it) prints as itself after a %, as glibc does.
func appendStrftime(dst []byte, c byte, t time.Time) []byte {
	year, mon, day := t.Date()
	hour, minute, sec := t.Clock()
	wday := int(t.Weekday())
	yday := t.YearDay() - 1
	switch c {
	case 'a':
		return append(dst, weekdays[wday][:3]...)
	case 'A':
		return append(dst, weekdays[wday]...)
	case 'b', 'h':
		return append(dst, months[mon-1][:3]...)
	case 'B':
		return append(dst, months[mon-1]...)
	case 'c': // the C locale's "%a %b %e %H:%M:%S %Y"
		dst = append(dst, weekdays[wday][:3]...)
		dst = append(dst, ' ')
		dst = append(dst, months[mon-1][:3]...)
		dst = append(dst, ' ')
		dst = appendNum(dst, day, 2, ' ')
		dst = append(dst, ' ')
		dst = appendStrftime(dst, 'T', t)
		dst = append(dst, ' ')
		return appendYear(dst, year)
	case 'C': // not padded: glibc prints 9 for the year 999
		return strconv.AppendInt(dst, int64(floorDiv(year, 100)), 10)
	case 'd':
		return appendNum(dst, day, 2, '0')
	case 'D', 'x': // %m/%d/%y
		dst = appendNum(dst, int(mon), 2, '0')
		dst = append(dst, '/')
		dst = appendNum(dst, day, 2, '0')
		dst = append(dst, '/')
		return appendNum(dst, floorMod(year, 100), 2, '0')
	case 'e':
		return appendNum(dst, day, 2, ' ')
	case 'F': // %Y-%m-%d
		dst = appendYear(dst, year)
		dst = append(dst, '-')
		dst = appendNum(dst, int(mon), 2, '0')
		dst = append(dst, '-')
		return appendNum(dst, day, 2, '0')
	case 'g':
		y, _ := t.ISOWeek()
		return appendNum(dst, floorMod(y, 100), 2, '0')
	case 'G':
		y, _ := t.ISOWeek()
		return appendYear(dst, y)
	case 'H':
		return appendNum(dst, hour, 2, '0')
	case 'I':
		return appendNum(dst, hour12(hour), 2, '0')
	case 'j':
		return appendNum(dst, yday+1, 3, '0')
	case 'k':
		return appendNum(dst, hour, 2, ' ')
	case 'l':
		return appendNum(dst, hour12(hour), 2, ' ')
	case 'm':
		return appendNum(dst, int(mon), 2, '0')
	case 'M':
		return appendNum(dst, minute, 2, '0')
	case 'n':
		return append(dst, '\n')
	case 'p':
		if hour >= 12 {
			return append(dst, "PM"...)
		}
		return append(dst, "AM"...)
	case 'P':
		if hour >= 12 {
			return append(dst, "pm"...)
		}
		return append(dst, "am"...)
	case 'r': // %I:%M:%S %p
		dst = appendNum(dst, hour12(hour), 2, '0')
		dst = append(dst, ':')
		dst = appendNum(dst, minute, 2, '0')
		dst = append(dst, ':')
		dst = appendNum(dst, sec, 2, '0')
		dst = append(dst, ' ')
		return appendStrftime(dst, 'p', t)
	case 'R': // %H:%M
		dst = appendNum(dst, hour, 2, '0')
		dst = append(dst, ':')
		return appendNum(dst, minute, 2, '0')
	case 's':
		return strconv.AppendInt(dst, t.Unix(), 10)
	case 'S':
		return appendNum(dst, sec, 2, '0')
	case 't':
		return append(dst, '\t')
	case 'T', 'X': // %H:%M:%S
		dst = appendNum(dst, hour, 2, '0')
		dst = append(dst, ':')
		dst = appendNum(dst, minute, 2, '0')
		dst = append(dst, ':')
		return appendNum(dst, sec, 2, '0')
	case 'u':
		return appendNum(dst, (wday+6)%7+1, 1, '0')
	case 'U':
		return appendNum(dst, (yday-wday+7)/7, 2, '0')
	case 'V':
		_, w := t.ISOWeek()
		return appendNum(dst, w, 2, '0')
	case 'w':
		return appendNum(dst, wday, 1, '0')
	case 'W':
		return appendNum(dst, (yday-(wday+6)%7+7)/7, 2, '0')
	case 'y':
		return appendNum(dst, floorMod(year, 100), 2, '0')
	case 'Y':
		return appendYear(dst, year)
	case 'z':
		_, off := t.Zone()
		sign := byte('+')
		if off < 0 {
			sign, off = '-', -off
		}
		off /= 60 // glibc drops the seconds of an offset
		dst = append(dst, sign)
		return appendNum(dst, off/60*100+off%60, 4, '0')
	case 'Z':
		name, _ := t.Zone()
		return append(dst, name...)
	case '%':
		return append(dst, '%')
	}
	// Not a conversion glibc knows, or a flag (_ - 0 ^ # +), a width or a
	// modifier (E O) with the format ending after it: glibc copies the
	// sequence as it is, padded to the width: "%5" prints "   %5".
	if c >= '1' && c <= '9' {
		dst = appendPad(dst, ' ', int(c-'0')-2)
	}
	return append(dst, '%', c)
}

func hour12(h int) int {
	if h %= 12; h == 0 {
		return 12
	}
	return h
}

// appendYear appends a year as glibc's %Y does: in decimal, without
// padding (999 is "999", -5 is "-5").
func appendYear(dst []byte, y int) []byte {
	return strconv.AppendInt(dst, int64(y), 10)
}

// appendNum appends v (>= 0) padded with pad to width characters.
func appendNum(dst []byte, v, width int, pad byte) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(v), 10)
	dst = appendPad(dst, pad, width-len(s))
	return append(dst, s...)
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func floorMod(a, b int) int {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
