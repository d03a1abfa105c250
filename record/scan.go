package record

import (
	"bytes"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a strict RFC 8259 JSON tokenizer over one payload. It never
// allocates except to unescape strings that contain escapes. A syntax error
// sets fatal and stops all further progress: the message as a whole is then
// malformed.
type scanner struct {
	b     []byte
	i     int
	fatal *Error
	depth int
}

// maxDepth bounds nesting so a hostile payload cannot exhaust the stack.
const maxDepth = 32

func (s *scanner) syntax(format string, args ...any) {
	if s.fatal == nil {
		s.fatal = &Error{Reason: ReasonMalformedJSON, Index: -1,
			Detail: fmt.Sprintf(format, args...) + fmt.Sprintf(" at byte %d", s.i)}
	}
	// Park at the end so every loop terminates.
	s.i = len(s.b)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

func describe(c byte) string {
	switch {
	case c == 0:
		return "end of input"
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	}
	return fmt.Sprintf("%q", c)
}

// describeAt says what b, the rest of the input, starts with. Unlike
// describe it checks literals, so "not json" is quoted as found rather
// than called null.
func describeAt(b []byte) string {
	if len(b) == 0 {
		return "end of input"
	}
	for _, lit := range []string{"null", "true", "false"} {
		if bytes.HasPrefix(b, []byte(lit)) {
			return describe(b[0])
		}
	}
	if c := b[0]; c == 'n' || c == 't' || c == 'f' || describe(c)[0] == '\'' {
		return fmt.Sprintf("%q, which is not JSON", b[:min(len(b), 16)])
	}
	return describe(b[0])
}

// str reads a string token and returns its unescaped bytes. Without escapes
// the result aliases the input.
func (s *scanner) str() []byte {
	if s.peek() != '"' {
		s.syntax("expected a string, found %s", describe(s.peek()))
		return nil
	}
	s.i++
	start := s.i
	var high byte // OR of the bytes: ASCII needs no UTF-8 check
	for s.i < len(s.b) {
		c := s.b[s.i]
		high |= c
		switch {
		case c == '"':
			out := s.b[start:s.i]
			s.i++
			if high >= 0x80 && !utf8.Valid(out) {
				s.i = start
				s.syntax("string is not valid UTF-8")
				return nil
			}
			return out
		case c == '\\':
			return s.strSlow(start)
		case c < 0x20:
			s.syntax("control character in string")
			return nil
		}
		s.i++
	}
	s.syntax("unterminated string")
	return nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (s *scanner) strSlow(start int) []byte {
	out := make([]byte, 0, s.i-start+16)
	out = append(out, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				s.syntax("string is not valid UTF-8")
				return nil
			}
			return out
		case c < 0x20:
			s.syntax("control character in string")
			return nil
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s.b[s.i:])
			if !ok {
				s.syntax("bad \\u escape")
				return nil
			}
			s.i += 4
			if utf16.IsSurrogate(r) {
				// A high surrogate must be followed by a low one.
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					if r2, ok := hex4(s.b[s.i+2:]); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							s.i += 6
							out = utf8.AppendRune(out, d)
							continue
						}
					}
				}
				s.syntax("unpaired UTF-16 surrogate in \\u escape")
				return nil
			}
			out = utf8.AppendRune(out, r)
		default:
			s.syntax("bad escape \\%c", e)
			return nil
		}
	}
	s.syntax("unterminated string")
	return nil
}

// number reads a number token per RFC 8259 §6 and returns its bytes.
func (s *scanner) number() []byte {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		s.syntax("bad number")
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			s.syntax("bad number: no digit after the decimal point")
			return nil
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			s.syntax("bad number: no digit in the exponent")
			return nil
		}
	}
	return s.b[start:s.i]
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// nonFinite reports whether the next token is one of the non-JSON words
// NaN, Infinity or -Infinity that some devices send, and consumes it.
func (s *scanner) nonFinite() bool {
	s.ws()
	rest := s.b[s.i:]
	for _, w := range [...]string{"NaN", "Infinity", "-Infinity", "+Infinity", "nan", "inf", "-inf"} {
		if len(rest) >= len(w) && string(rest[:len(w)]) == w {
			s.i += len(w)
			return true
		}
	}
	return false
}

func (s *scanner) literal(w string) bool {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}

// skip consumes one value of any type, checking its syntax.
func (s *scanner) skip() {
	switch c := s.peek(); c {
	case '"':
		s.str()
	case '{':
		s.object(func([]byte) { s.skip() })
	case '[':
		s.array(func(int) { s.skip() })
	case 't':
		if !s.literal("true") {
			s.syntax("bad literal")
		}
	case 'f':
		if !s.literal("false") {
			s.syntax("bad literal")
		}
	case 'n':
		if !s.literal("null") {
			s.syntax("bad literal")
		}
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			s.number()
			return
		}
		s.syntax("expected a value, found %s", describe(c))
	}
}

// object iterates over an object's members; member must consume the value.
func (s *scanner) object(member func(key []byte)) {
	if !s.eat('{') {
		s.syntax("expected an object, found %s", describe(s.peek()))
		return
	}
	if s.depth++; s.depth > maxDepth {
		s.syntax("nested deeper than %d levels", maxDepth)
		return
	}
	defer func() { s.depth-- }()
	if s.eat('}') {
		return
	}
	for s.fatal == nil {
		key := s.str()
		if s.fatal != nil {
			return
		}
		if !s.eat(':') {
			s.syntax("expected ':' after an object key")
			return
		}
		member(key)
		if s.fatal != nil {
			return
		}
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return
		}
		s.syntax("expected ',' or '}' in an object, found %s", describe(s.peek()))
	}
}

// array iterates over an array's elements; elem must consume the value.
func (s *scanner) array(elem func(i int)) {
	if !s.eat('[') {
		s.syntax("expected an array, found %s", describe(s.peek()))
		return
	}
	if s.depth++; s.depth > maxDepth {
		s.syntax("nested deeper than %d levels", maxDepth)
		return
	}
	defer func() { s.depth-- }()
	if s.eat(']') {
		return
	}
	for i := 0; s.fatal == nil; i++ {
		elem(i)
		if s.fatal != nil {
			return
		}
		if s.eat(',') {
			continue
		}
		if s.eat(']') {
			return
		}
		s.syntax("expected ',' or ']' in an array, found %s", describe(s.peek()))
	}
}
