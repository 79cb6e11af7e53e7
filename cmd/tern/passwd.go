package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ternmq/tern/broker/auth"
)

func init() { commands = append(commands, newPasswdCmd) }

func newPasswdCmd() *cobra.Command {
	var a auth.PasswdArgs
	cmd := &cobra.Command{
		Use:   "passwd [-c] [-b] [-D] FILE USER [PASSWORD]",
		Short: "Create or edit a password file (like mosquitto_passwd)",
		Long: `Create or edit a password file for tern broker --password-file.

Passwords are stored as salted bcrypt hashes (or argon2id with --argon2),
one "user:hash" per line; files made with htpasswd -B work too, and so do
Mosquitto's own ($7$ and $6$, as mosquitto_passwd writes them). Mosquitto
reads only its own hashes: --mosquitto writes the $7$ form (PBKDF2-SHA512,
` + fmt.Sprint(auth.DefaultPBKDF2Iterations) + ` iterations unless --cost says otherwise), so that one file
serves both brokers. Each line also carries the user's
SCRAM-SHA-256 and SCRAM-SHA-512 credentials, for MQTT 5 clients that
authenticate with SCRAM (enhanced authentication); Mosquitto ignores
them, and --no-scram leaves them out.

On a terminal the password is read without echo; otherwise it is read
from standard input, one line for each of the two prompts.

  tern passwd -c FILE USER          create FILE (or overwrite it) and prompt for USER's password
  tern passwd FILE USER             add or change USER, prompting for the password
  tern passwd -b FILE USER PASS     take the password from the command line
  tern passwd --mosquitto FILE USER write a hash Mosquitto can read too
  tern passwd -D FILE USER          delete USER`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.File, a.User = args[0], args[1]
			if len(args) == 3 {
				if !a.Batch {
					return fmt.Errorf("a password on the command line needs -b")
				}
				a.Password = args[2]
			} else if a.Batch {
				return fmt.Errorf("-b needs the password as the third argument")
			}
			if in, ok := cmd.InOrStdin().(*os.File); ok && !a.Batch && !a.Delete && term.IsTerminal(int(in.Fd())) {
				a.ReadPassword = terminalReader(in, cmd.ErrOrStderr())
			}
			return auth.PasswdCommand(a, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&a.Create, "create", "c", false, "create the file, overwriting an existing one")
	fl.BoolVarP(&a.Batch, "batch", "b", false, "take the password from the command line")
	fl.BoolVarP(&a.Delete, "delete", "D", false, "delete the user")
	fl.BoolVar(&a.Argon2, "argon2", false, "hash with argon2id instead of bcrypt")
	fl.BoolVar(&a.Mosquitto, "mosquitto", false, "hash in Mosquitto 2.0's $7$ form (PBKDF2-SHA512), which Mosquitto reads too")
	fl.IntVar(&a.Cost, "cost", 0, fmt.Sprintf("bcrypt cost (default %d), argon2id passes with --argon2 (default %d), or PBKDF2 iterations with --mosquitto (default %d)",
		auth.DefaultBcryptCost, auth.DefaultArgon2Time, auth.DefaultPBKDF2Iterations))
	fl.BoolVar(&a.NoSCRAM, "no-scram", false, "store no SCRAM-SHA-256 / SCRAM-SHA-512 credentials for the user")
	fl.IntVar(&a.SCRAMIterations, "scram-iterations", 0, fmt.Sprintf("PBKDF2 iterations of the SCRAM credentials (%d to %d; default %d)",
		auth.MinSCRAMIterations, auth.MaxSCRAMIterations, auth.DefaultSCRAMIterations))
	return cmd
}

// terminalReader reads passwords from the terminal in without echo, as
// mosquitto_passwd and htpasswd do, with the prompts on the writer
// prompts. The terminal is put in raw mode before each prompt is shown,
// so that nothing typed after it appears, and restored before the
// function returns, whatever happens: Ctrl-C, and Ctrl-D on an empty
// line, end the prompt with an error rather than kill the process and
// leave the terminal without echo. Backspace and Ctrl-U edit the line;
// every other byte is part of the password, whatever its encoding. One
// buffered reader serves both prompts, so that a password typed ahead
// is not lost.
func terminalReader(in *os.File, prompts io.Writer) func(string) (string, error) {
	fd := int(in.Fd())
	r := bufio.NewReader(in)
	return func(prompt string) (string, error) {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return "", fmt.Errorf("turning off the terminal's echo: %w", err)
		}
		fmt.Fprint(prompts, prompt)
		pw, err := readRawLine(r)
		term.Restore(fd, old)
		fmt.Fprintln(prompts) // the Enter the terminal did not echo
		return pw, err
	}
}

// readRawLine reads one line typed on a terminal in raw mode.
func readRawLine(r *bufio.Reader) (string, error) {
	var pw []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = errors.New("no password on standard input")
			}
			return "", err
		}
		switch b {
		case '\r', '\n':
			if b == '\r' && r.Buffered() > 0 {
				if next, _ := r.Peek(1); next[0] == '\n' {
					r.ReadByte() // a pasted CRLF is one line end
				}
			}
			return string(pw), nil
		case 3: // Ctrl-C
			return "", errors.New("interrupted: the file is unchanged")
		case 4: // Ctrl-D
			if len(pw) == 0 {
				return "", errors.New("no password entered: the file is unchanged")
			}
		case 0x7f, '\b': // Backspace: one character, or one byte of a non-UTF-8 one
			_, n := utf8.DecodeLastRune(pw)
			pw = pw[:len(pw)-n]
		case 0x15: // Ctrl-U
			pw = pw[:0]
		default:
			pw = append(pw, b)
		}
	}
}
