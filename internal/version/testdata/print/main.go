// Command print prints version.String(), for TestLinkerTag.
package main

import (
	"fmt"

	"github.com/deviceless/deviceless/internal/version"
)

func main() { fmt.Println(version.String()) }
