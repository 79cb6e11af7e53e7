// Command tern is Tern's one binary: an MQTT broker (tern broker), tools
// to publish and subscribe, a load generator (tern bench) and helpers such
// as tern passwd.
package main

import (
	"fmt"
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
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tern:", err)
		os.Exit(2)
	}
}
