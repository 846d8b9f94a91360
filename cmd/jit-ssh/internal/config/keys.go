package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// keyChecker walks a YAML document alongside the Server type and reports,
// each with its key path, what the YAML decoder would report by line only or
// stop at: keys Server does not have, values of the wrong kind and
// durations that do not parse.
type keyChecker struct {
	problems []string
	paths    map[string]bool // key paths with a problem
	lines    map[int]bool    // lines of values with a problem
	visits   int             // nodes walked, aliases followed included
}

// maxWalk bounds the nodes walked. Aliases and merge keys make a small
// document stand for a huge one ("billion laughs"); a real config has a few
// hundred nodes.
const maxWalk = 100000

func newKeyChecker() *keyChecker {
	return &keyChecker{paths: map[string]bool{}, lines: map[int]bool{}}
}

var durationType = reflect.TypeFor[Duration]()

func (k *keyChecker) add(n *yaml.Node, path, format string, args ...any) {
	k.problems = append(k.problems, fmt.Sprintf("%s: %s (line %d)", path, fmt.Sprintf(format, args...), n.Line))
	k.paths[path] = true
	k.lines[n.Line] = true
}

func (k *keyChecker) walk(n *yaml.Node, t reflect.Type, path string) {
	if k.visits >= maxWalk {
		if !k.paths["(aliases)"] {
			k.paths["(aliases)"] = true
			k.add(n, path, "the document expands to more than %d values through aliases; write it out plainly", maxWalk)
		}
		return
	}
	k.visits++
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			k.walk(c, t, path)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value; Validate says if it is required
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			k.add(n, path, "want a duration like 5m or 2h")
		} else if _, err := time.ParseDuration(n.Value); err != nil {
			k.add(n, path, "%q is not a duration like 5m or 2h", n.Value)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			k.add(n, path, "want a mapping of keys to values")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			kp := key.Value
			if path != "" {
				kp = path + "." + key.Value
			}
			if key.ShortTag() == "!!merge" { // "<<: *defaults"
				for val.Kind == yaml.AliasNode && val.Alias != nil {
					val = val.Alias
				}
				if val.Kind == yaml.SequenceNode {
					for _, c := range val.Content {
						k.walk(c, t, path)
					}
				} else {
					k.walk(val, t, path)
				}
				continue
			}
			if t.Kind() == reflect.Map {
				k.walk(val, t.Elem(), kp)
				continue
			}
			f, ok := yamlField(t, key.Value)
			if !ok {
				k.add(key, kp, "unknown key")
				continue
			}
			k.walk(val, f.Type, kp)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			k.add(n, path, "want a list, like [a, b]")
			return
		}
		for i, c := range n.Content {
			k.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			k.add(n, path, "want a single value, not a list or mapping")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if tag := n.ShortTag(); n.Kind != yaml.ScalarNode || tag != "!!int" {
			k.add(n, path, "want a whole number, got %q", n.Value)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			k.add(n, path, "want true or false, got %q", n.Value)
		}
	}
}

// yamlField finds the field of struct type t that the YAML key name decodes
// into, by the rules of go.yaml.in/yaml/v3 (tag name, else lower-cased name).
func yamlField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// decodeLineRE is compiled on first use, like the patterns in validate.go.
var decodeLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^line (\d+): `) })

// reported says whether one of the decoder's "line N: ..." messages is
// about a value the walk already reported.
func (k *keyChecker) reported(msg string) bool {
	m := decodeLineRE().FindStringSubmatch(msg)
	if m == nil {
		return false
	}
	line, _ := strconv.Atoi(m[1])
	return k.lines[line]
}
