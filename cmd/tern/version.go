package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version, when set at build time with -ldflags "-X main.version=v1.2.3",
// replaces the module version of the build info.
var version string

func init() { commands = append(commands, newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the source revision and the Go version of this binary",
		Long: `Print the version of this binary: the module version (or the one set with
-ldflags "-X main.version=..."), the version control revision and time it
was built from ("modified" when the checkout had uncommitted changes), and
the Go version and platform. tern --version prints the same line, and the
broker publishes it in $SYS/broker/version.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}

// versionString describes the binary from its build information, e.g.
//
//	tern v0.3.0 (rev 1a2b3c4d5e6f, 2026-12-07T05:00:00Z, modified) go1.26.8 linux/amd64
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return describeBuild(version, bi)
}

// describeBuild is versionString for a version set with -ldflags ("" for
// none) and build information (nil for none).
func describeBuild(v string, bi *debug.BuildInfo) string {
	goVersion := runtime.Version()
	var details []string
	if bi != nil {
		if v == "" {
			v = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		var rev, at string
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			details = append(details, "rev "+rev[:min(len(rev), 12)])
		}
		if at != "" {
			details = append(details, at)
		}
		if modified {
			details = append(details, "modified")
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	s := "tern " + v
	if len(details) > 0 {
		s += " (" + strings.Join(details, ", ") + ")"
	}
	return s + " " + goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}
