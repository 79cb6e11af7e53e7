package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// keyFlag is the flag of a configuration key. It reads its argument as
// the file reads the key's value, and is applied over the file.
type keyFlag struct {
	k   *key
	raw string
	val any // the parsed value, for the key (negated for an inverted flag)
	set bool
}

func (f *keyFlag) String() string { return f.raw }

// Set implements pflag.Value.
func (f *keyFlag) Set(s string) error {
	v, err := f.k.parse(s)
	if err != nil {
		return err
	}
	if f.k.invert {
		v = !v.(bool)
	}
	f.raw, f.val, f.set = s, v, true
	return nil
}

// Type implements pflag.Value; it names the argument in the help.
func (f *keyFlag) Type() string {
	switch f.k.kind {
	case kPath:
		return "file"
	case kBool:
		return "bool"
	case kInt:
		return "int"
	case kDuration:
		return "duration"
	}
	return "string"
}

// addKeyFlags defines the flag of every key that has one.
func addKeyFlags(fl *pflag.FlagSet) []*keyFlag {
	var flags []*keyFlag
	for _, k := range keys {
		if k.flag == "" || k.kind == kList || k.kind == kSection {
			continue
		}
		f := &keyFlag{k: k, raw: k.def}
		if k.invert {
			f.raw = "false"
		}
		doc := k.doc
		if k.flagDoc != "" {
			doc = k.flagDoc
		}
		fl.Var(f, k.flag, doc+" ["+k.path+"]")
		if k.kind == kBool {
			fl.Lookup(k.flag).NoOptDefVal = "true"
		}
		flags = append(flags, f)
	}
	return flags
}

// applyFlags sets the keys whose flags were given over c. Relative
// paths in flags are taken from the working directory, as every command
// does.
func (c *brokerConfig) applyFlags(flags []*keyFlag) error {
	for _, f := range flags {
		if !f.set {
			continue
		}
		v := f.val
		if s, ok := v.(string); ok && f.k.kind == kPath && s != "" {
			abs, err := filepath.Abs(s)
			if err != nil {
				return fmt.Errorf("--%s: %w", f.k.flag, err)
			}
			v = abs
		}
		assign(f.k.ptr(c, 0), v)
		c.set[f.k.path] = origin{flag: "--" + f.k.flag}
	}
	return nil
}

// exampleColumn is where the comments of --example-config start.
const exampleColumn = 36

// writeExampleConfig prints a configuration file with every key of the
// table: its default, or, commented out, an example value where there is
// no default; the documentation and the flag of each key beside it.
func writeExampleConfig(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# Configuration file of tern broker (tern broker --config FILE), as printed
# by tern broker --example-config (%s).
#
# Every key is shown with its default; keys without a default are commented
# out, with an example value. Every key is optional: a key left out keeps its
# default. Flags override the file (each key's flag is named beside it).
# Relative paths in this file are taken from the directory of the file.
`, versionString())
	commentedAt := map[string]int{} // sections commented out: where their "#" is
	firstItemKey, nested := true, false
	for _, k := range keys {
		par := parent(k.path)
		if par == "" && (nested || k.kind == kSection || k.kind == kList) {
			b.WriteString("\n") // around sections
		}
		nested = par != ""
		name := strings.TrimPrefix(k.path[len(par):], ".")
		indent := 0
		switch {
		case strings.HasPrefix(k.path, "listeners[].tls."):
			indent = 6
		case strings.HasPrefix(k.path, "listeners[]."):
			indent = 4
		case par != "":
			indent = 2 * strings.Count(k.path, ".") // cluster.embedded.listen: 4
		}
		value := k.def
		commented := k.def == ""
		if strings.HasPrefix(k.path, "listeners[].") {
			value, commented = k.example, !k.show
		} else if commented {
			value = k.example
		}
		hashAt := indent
		if at, ok := commentedAt[par]; ok {
			commented, hashAt = true, at
		}
		if k.kind == kSection || k.kind == kList {
			commented = commented && k.kind == kSection && hasNoShownKey(k.path)
			if commented {
				commentedAt[k.path] = hashAt
			}
		}

		var line string
		if commented {
			line = strings.Repeat(" ", hashAt) + "# " + strings.Repeat(" ", indent-hashAt)
		} else {
			line = strings.Repeat(" ", indent)
		}
		if strings.HasPrefix(k.path, "listeners[].") && indent == 4 && firstItemKey {
			line = line[:len(line)-2] + "- " // the first key of the listener opens the list item
			firstItemKey = false
		}
		line += name + ":"
		if k.kind != kSection && k.kind != kList {
			line += " " + yamlScalar(value)
		}
		doc := k.doc
		switch {
		case k.kind == kList:
			doc += " (--listen URL, -p PORT)"
		case k.flag != "" && k.invert:
			doc += " (--" + k.flag + " sets false)"
		case k.flag != "":
			doc += " (--" + k.flag + ")"
		}
		writeCommented(&b, line, doc)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// hasNoShownKey says whether the section at path has no key shown
// uncommented in the example.
func hasNoShownKey(path string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k.path, path+".") && k.kind != kSection {
			if strings.HasPrefix(k.path, "listeners[].") {
				if k.show {
					return false
				}
			} else if k.def != "" {
				return false
			}
		}
	}
	return true
}

// writeCommented writes line with doc as its comment from
// exampleColumn, wrapped at 110 columns.
func writeCommented(b *strings.Builder, line, doc string) {
	if doc == "" {
		b.WriteString(line + "\n")
		return
	}
	pad := max(exampleColumn-len(line), 2)
	col := len(line) + pad
	words := strings.Fields(doc)
	cur := line + strings.Repeat(" ", pad) + "#"
	for len(words) > 0 {
		w := words[0]
		if len(cur)+1+len(w) > 110 && !strings.HasSuffix(cur, "#") && !strings.HasSuffix(cur, "#  ") {
			b.WriteString(cur + "\n")
			cur = strings.Repeat(" ", col) + "#  "
		}
		cur += " " + w
		words = words[1:]
	}
	b.WriteString(cur + "\n")
}

// yamlScalar writes s as a YAML scalar, quoted when plain would not read
// back as the same string.
func yamlScalar(s string) string {
	if s == "" || strings.TrimSpace(s) != s || strings.Contains(s, ": ") || strings.Contains(s, " #") ||
		strings.ContainsAny(s[:1], "!&*{}[]|>'\"%@`#,?:-") {
		return strconv.Quote(s)
	}
	return s
}
