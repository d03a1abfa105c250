package epcis

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaJSON is the official GS1 EPCIS 2.0 JSON Schema (schema/README.md).
//
//go:embed schema/EPCIS-JSON-Schema.json
var schemaJSON []byte

const schemaURL = "https://ref.gs1.org/standards/epcis/epcis-json-schema.json"

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	// Formats (date-time, uri) are checked, not just annotations.
	c.AssertFormat()
	c.UseRegexpEngine(compileRegexp)
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
})

// Validate checks an EPCIS 2.0 JSON document (or event) against the
// official schema. The error names each place that fails and why.
func Validate(doc []byte) error {
	sch, err := compiled()
	if err != nil {
		return fmt.Errorf("compile the EPCIS schema: %w", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return errorf("not JSON: %v", err)
	}
	err = sch.Validate(v)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return errorf("does not validate against the EPCIS 2.0 schema: %s", leaves(ve))
	}
	return err
}

var printer = message.NewPrinter(language.English)

// leaves lists the innermost causes, where a person finds what to fix.
func leaves(ve *jsonschema.ValidationError) string {
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, "/"+strings.Join(e.InstanceLocation, "/")+": "+e.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("and %d more", len(out)-8))
	}
	return strings.Join(out, "; ")
}

// compileRegexp is the schema's regular expression engine: Go's regexp,
// plus the one ECMAScript form it lacks that the EPCIS schema uses, a
// leading negative lookahead "^(?!(X))" ("does not start with X"), which
// is the negation of "^(?:X)". Any other lookaround is refused.
func compileRegexp(pattern string) (jsonschema.Regexp, error) {
	if inner, ok := strings.CutPrefix(pattern, "^(?!"); ok && strings.HasSuffix(inner, ")") && !strings.Contains(inner, "(?") {
		re, err := regexp.Compile("^(?:" + strings.TrimSuffix(inner, ")") + ")")
		if err != nil {
			return nil, err
		}
		return notPrefix{re, pattern}, nil
	}
	return regexp.Compile(pattern)
}

type notPrefix struct {
	re      *regexp.Regexp
	pattern string
}

func (n notPrefix) MatchString(s string) bool { return !n.re.MatchString(s) }
func (n notPrefix) String() string            { return n.pattern }
