//go:build !agentonly

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/deviceless/deviceless/rules"
)

func rulesCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: deviceless rules check|test PATH...\n")
		return 2
	}
	switch args[0] {
	case "check":
		return rulesCheck(args[1:], stdout, stderr)
	case "test":
		return rulesTest(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "deviceless rules: unknown command %q (check, test)\n", args[0])
	return 2
}

func rulesCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: deviceless rules check PATH...\n\nValidates rule files and folders (walked recursively, *_test.yaml excluded).\nPrints file:line:col: message per problem and exits 1 if there is any.\n")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	set, err := rules.Load(fs.Args(), rules.Options{})
	if err != nil {
		var es rules.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(stderr, e)
			}
			fmt.Fprintf(stderr, "%d problem(s) found\n", len(es))
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d rules, %d functions in %d files\n", len(set.Rules), len(set.Functions), len(set.Files()))
	return 0
}

func rulesTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "list every test case, not only failures")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: deviceless rules test [-v] PATH...\n\nRuns rule test files (*_test.yaml; folders are searched recursively).\nExits 1 if any test fails.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	results, err := rules.RunTests(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	failed := 0
	for _, r := range results {
		switch {
		case r.Err != nil:
			failed++
			where := r.File
			if r.Name != "" {
				where = fmt.Sprintf("%s: %s", r.Pos, r.Name)
			}
			fmt.Fprintf(stdout, "FAIL %s\n%s\n", where, indent(r.Err.Error()))
		case r.Diff != "":
			failed++
			fmt.Fprintf(stdout, "FAIL %s: %s\n%s", r.Pos, r.Name, indent(r.Diff))
		case *verbose:
			fmt.Fprintf(stdout, "ok   %s: %s\n", r.Pos, r.Name)
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "FAIL: %d of %d tests failed\n", failed, len(results))
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d tests passed\n", len(results))
	return 0
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
