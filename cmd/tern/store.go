package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ternmq/tern/store/disk"
)

func init() { commands = append(commands, newStoreCmd) }

// defaultDataDir is where tern broker keeps its data when neither
// store.data_dir nor --data-dir says: systemd's StateDirectory= (it sets
// $STATE_DIRECTORY, /var/lib/tern for a system service), else the XDG
// state directory of the user ($XDG_STATE_HOME/tern, by default
// ~/.local/state/tern). Never the working directory: a broker started
// from another directory would silently start without its sessions.
func defaultDataDir() (string, error) {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		if i := indexByte(d, ':'); i >= 0 { // several directories: the first
			d = d[:i]
		}
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tern"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no data directory: $HOME is not set; give one with --data-dir DIR (or store.data_dir), or run with --in-memory")
	}
	return filepath.Join(home, ".local", "state", "tern"), nil
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// dataDir returns the data directory the configuration names, or the
// default.
func (c *brokerConfig) dataDir() (string, error) {
	if c.Store.DataDir != "" {
		return c.Store.DataDir, nil
	}
	return defaultDataDir()
}

// openStore opens the durable store of the configuration, or returns nil
// for --in-memory.
func (st *brokerSetup) openStore() (*disk.Broker, string, error) {
	c := st.cfg
	if c.Store.InMemory {
		if c.Store.DataDir != "" {
			return nil, "", fmt.Errorf("%s and %s contradict each other: keep the data directory, or run in memory, not both", c.where("store.in_memory"), c.where("store.data_dir"))
		}
		return nil, "", nil
	}
	dir, err := c.dataDir()
	if err != nil {
		return nil, "", err
	}
	opts := disk.BrokerOptions{CommitWindow: c.Store.CommitWindow, Logger: st.srv.Logger}
	if c.Store.Sync == "none" {
		opts.Sync = disk.SyncNone
	}
	s, err := disk.OpenBroker(dir, opts)
	if err != nil {
		return nil, dir, fmt.Errorf("opening the data directory %s (%s): %w", dir, c.where("store.data_dir"), err)
	}
	return s, dir, nil
}

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Check or compact the broker's data directory",
		Long: `Operate on the durable store of tern broker (its data directory).

  tern store check [--data-dir DIR]     read every record and report what the store holds;
                                        exits 1 if the store is damaged (a torn last write
                                        is not damage: the broker drops it at its next start)
  tern store compact [--data-dir DIR]   rewrite the log with the live state alone
                                        (a running broker does this on its own, without
                                        stopping its writes, whenever the log has doubled;
                                        to compact now, stop the broker first: compact
                                        refuses a directory a broker holds)

Without --data-dir the default data directory is used, as tern broker does.`,
	}
	var dir string
	check := &cobra.Command{
		Use:   "check",
		Short: "Check the data directory and report what it holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := storeDir(dir)
			if err != nil {
				return err
			}
			return storeCheck(cmd.OutOrStdout(), d)
		},
	}
	compact := &cobra.Command{
		Use:   "compact",
		Short: "Rewrite the log with the live state alone (stop the broker first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := storeDir(dir)
			if err != nil {
				return err
			}
			s, err := disk.OpenBroker(d, disk.BrokerOptions{Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))})
			if errors.Is(err, disk.ErrLocked) {
				return fmt.Errorf("a running broker holds the lock on %s (%s): it compacts the log by itself, beside its writes, whenever the log has doubled since the last compaction; stop the broker to compact now", d, filepath.Join(d, "broker.lock"))
			}
			if err != nil {
				return err
			}
			before, after, err := s.Compact()
			if cerr := s.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "compacted %s: %d bytes -> %d bytes\n", filepath.Join(d, disk.BrokerLogName), before, after)
			return nil
		},
	}
	for _, c := range []*cobra.Command{check, compact} {
		c.Flags().StringVar(&dir, "data-dir", "", "the broker's data `DIR` (default: as tern broker)")
		cmd.AddCommand(c)
	}
	return cmd
}

func storeDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return defaultDataDir()
}

func storeCheck(w io.Writer, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, disk.BrokerLogName)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s holds no broker store (no %s): give the broker's --data-dir", dir, disk.BrokerLogName)
	}
	rep, err := disk.CheckBroker(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %d bytes, %d batches\n", rep.Path, rep.Size, rep.Batches)
	fmt.Fprintf(w, "sessions: %d, subscriptions: %d, queued or in flight: %d, retained: %d\n", rep.Sessions, rep.Subscribe, rep.Queued, rep.Retained)
	if rep.Torn != "" {
		fmt.Fprintf(w, "torn tail: %d bytes after offset %d (%s): a write a crash cut short, dropped at the next start\n", rep.Size-rep.Valid, rep.Valid, rep.Torn)
	}
	fmt.Fprintln(w, "ok")
	return nil
}
