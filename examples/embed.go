// Package examples carries the example rule sets inside the binary, so that
// `deviceless demo` needs no files.
package examples

import "embed"

// Greenhouse holds examples/greenhouse/rules.
//
//go:embed greenhouse/rules/*.yaml
var Greenhouse embed.FS
