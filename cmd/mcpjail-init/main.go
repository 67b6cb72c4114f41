// Command mcpjail-init is the init step of every mcpjail jail: `mcpjail
// run` starts it in the jail's namespaces and, once it is inside the jail's
// cgroups, sends it its spec over a pipe. It is not meant to be run by hand
// and has no flags; see package sandbox/initstep.
package main

import "github.com/mcpjail/mcpjail/sandbox/initstep"

func main() { initstep.Main() }
