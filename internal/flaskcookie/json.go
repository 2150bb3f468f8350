package flaskcookie

// parser is a validating JSON reader that accepts what Python's
// json.loads accepts (RFC 8259 plus NaN, Infinity and -Infinity), so the
// edge and Flask agree on which payloads are sessions. It hands out the
// raw text of members instead of building values, so reading two keys
// of a session allocates nothing. Input must already be valid UTF-8.
type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// value reads one value after optional whitespace.
func (p *parser) value(depth int) error {
	p.ws()
	switch c := p.peek(); c {
	case '{':
		return p.object(depth+1, nil)
	case '[':
		return p.array(depth+1, nil)
	case '"':
		return p.str()
	case 'N':
		return p.literal("NaN")
	case 'I':
		return p.literal("Infinity")
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	case '-':
		if p.i+1 < len(p.b) && p.b[p.i+1] == 'I' {
			return p.literal("-Infinity")
		}
		return p.number()
	default:
		if c >= '0' && c <= '9' {
			return p.number()
		}
		return errJSON
	}
}

// object reads an object at p.i (which must be '{'), calling fn, if not
// nil, with each member's quoted key and raw value.
func (p *parser) object(depth int, fn func(key, val []byte)) error {
	if depth > maxDepth {
		return errTooDeep
	}
	p.i++ // '{'
	p.ws()
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		if p.peek() != '"' {
			return errJSON
		}
		k := p.i
		if err := p.str(); err != nil {
			return err
		}
		key := p.b[k:p.i]
		p.ws()
		if p.peek() != ':' {
			return errJSON
		}
		p.i++
		p.ws()
		v := p.i
		if err := p.value(depth); err != nil {
			return err
		}
		if fn != nil {
			fn(key, p.b[v:p.i])
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return errJSON
		}
	}
}

// array reads an array at p.i (which must be '['), calling fn, if not
// nil, with each element's raw text.
func (p *parser) array(depth int, fn func(elem []byte)) error {
	if depth > maxDepth {
		return errTooDeep
	}
	p.i++ // '['
	p.ws()
	if p.peek() == ']' {
		p.i++
		return nil
	}
	for {
		p.ws()
		v := p.i
		if err := p.value(depth); err != nil {
			return err
		}
		if fn != nil {
			fn(p.b[v:p.i])
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return errJSON
		}
	}
}

// str reads a string at p.i (which must be '"'). Like Python's strict
// mode it refuses control characters inside.
func (p *parser) str() error {
	p.i++ // '"'
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return nil
		case c < 0x20:
			return errJSON
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return errJSON
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) {
					return errJSON
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if !isHex(h) {
						return errJSON
					}
				}
				p.i += 6
			default:
				return errJSON
			}
		default:
			p.i++
		}
	}
	return errJSON
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
func (p *parser) number() error {
	if p.peek() == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return errJSON
	}
	if p.peek() == '.' {
		p.i++
		if p.digits() == 0 {
			return errJSON
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if p.digits() == 0 {
			return errJSON
		}
	}
	return nil
}

func (p *parser) digits() int {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

func (p *parser) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return errJSON
	}
	p.i += len(lit)
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
