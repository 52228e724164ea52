package hub

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The repository's PROTOCOL.md must cover everything the hub speaks: every
// op it parses or sends, every JSON member it reads or writes, every error
// code it answers. The lists come from the code itself (opNames, the fields
// the scanner looks for, the literals the replies are built from, the Error
// values), so a new op, field or code fails here until it is documented.
func TestProtocolDocumentCoversTheCode(t *testing.T) {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	src := hubSources(t)

	// Ops: those parsed, and those written in replies and deliveries.
	ops := map[string]bool{}
	for _, name := range opNames[opInvalid+1:] {
		ops[name] = true
	}
	for _, m := range regexp.MustCompile(`\{"op":"([a-z]+)"`).FindAllStringSubmatch(src.literals, -1) {
		ops[m[1]] = true
	}
	for _, op := range sorted(ops) {
		if !strings.Contains(text, "`"+op+"`") && !strings.Contains(text, `"op":"`+op+`"`) {
			t.Errorf("op %q is not in PROTOCOL.md", op)
		}
	}

	// Members: those the scanner looks for, and those the replies write.
	members := map[string]bool{}
	ft := reflect.TypeOf(fields{})
	for i := range ft.NumField() {
		members[ft.Field(i).Name] = true
	}
	for _, m := range regexp.MustCompile(`"([a-z_]+)":`).FindAllStringSubmatch(src.literals, -1) {
		members[m[1]] = true
	}
	for _, f := range sorted(members) {
		if !strings.Contains(text, "`"+f+"`") && !strings.Contains(text, `"`+f+`"`) {
			t.Errorf("member %q is not in PROTOCOL.md", f)
		}
	}
	if len(ops) < 8 || len(members) < 10 {
		t.Fatalf("found only ops %v and members %v in the code: the scan is broken", sorted(ops), sorted(members))
	}

	// Error codes: a command's must be a row of the error code table; the
	// admin API's must at least be named.
	if len(src.commandCodes) == 0 || len(src.apiCodes) == 0 {
		t.Fatalf("found no Error codes in the code (commands %v, API %v)", src.commandCodes, src.apiCodes)
	}
	for code := range src.commandCodes {
		if !strings.Contains(text, "| "+strconv.Itoa(code)+" |") {
			t.Errorf("command error code %d has no row in PROTOCOL.md's error code table", code)
		}
	}
	for code := range src.apiCodes {
		if !regexp.MustCompile(`\b` + strconv.Itoa(code) + `\b`).MatchString(text) {
			t.Errorf("admin API status %d is not in PROTOCOL.md", code)
		}
	}
}

// sources is what the hub's non-test code says on the wire.
type sources struct {
	literals     string       // every string literal, unquoted, one per line
	commandCodes map[int]bool // Error{code, ...} outside the admin API
	apiCodes     map[int]bool // Error{code, ...} in admin*.go
}

func hubSources(t *testing.T) sources {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	s := sources{commandCodes: map[int]bool{}, apiCodes: map[int]bool{}}
	var lits strings.Builder
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		codes := s.commandCodes
		if strings.HasPrefix(name, "admin") {
			codes = s.apiCodes
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					if v, err := strconv.Unquote(n.Value); err == nil {
						lits.WriteString(v + "\n")
					}
				}
			case *ast.CompositeLit:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "Error" && len(n.Elts) > 0 {
					if lit, ok := n.Elts[0].(*ast.BasicLit); ok && lit.Kind == token.INT {
						code, _ := strconv.Atoi(lit.Value)
						codes[code] = true
					}
				}
			}
			return true
		})
	}
	s.literals = lits.String()
	return s
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
