// Command tern is Tern's one binary: an MQTT broker (tern broker), tools
// to publish and subscribe, a load generator (tern bench) and helpers such
// as tern passwd.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tern",
		Short:         "Tern: an MQTT 3.1 / 3.1.1 / 5.0 broker and toolkit",
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// commands holds the constructors of the subcommands; each subcommand's
// file appends its own in an init function.
var commands []func() *cobra.Command

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run runs tern with args and returns the exit status: 0, the status an
// *exitCodeError carries (tern pub, sub, rr and test exit as Mosquitto's
// tools do), or 2 for any other error.
func run(args []string, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	name := "tern"
	if cmd != nil && cmd != root {
		name = cmd.CommandPath()
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		if !ec.quiet {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			if ec.usage {
				fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", name)
			}
		}
		return ec.code
	}
	fmt.Fprintln(stderr, "tern:", err)
	return 2
}
