package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// PasswdArgs are the arguments of tern passwd, which mirrors
// mosquitto_passwd:
//
//	tern passwd [-c] [--argon2 | --mosquitto] [--cost N] [--no-scram | --scram-iterations N] FILE USER     prompt for the password (twice)
//	tern passwd [-c] -b [--argon2 | --mosquitto] [--cost N] [--no-scram | --scram-iterations N] FILE USER PASSWORD
//	tern passwd -D FILE USER
type PasswdArgs struct {
	File     string
	Create   bool // -c: create the file, or overwrite it if it exists
	Delete   bool // -D: delete User
	Batch    bool // -b: Password is given on the command line
	User     string
	Password string
	Argon2   bool // hash with argon2id instead of bcrypt
	// Mosquitto hashes with PBKDF2-SHA512 in Mosquitto 2.0's "$7$" form
	// instead of bcrypt, so that Mosquitto can read the line too (see
	// [HashOptions].PBKDF2).
	Mosquitto bool
	// Cost is the bcrypt cost, the argon2id passes with Argon2, or the
	// PBKDF2 iterations with Mosquitto; 0 for the default.
	Cost int
	// NoSCRAM writes the password hash only, without the SCRAM-SHA-256
	// and SCRAM-SHA-512 credentials written by default.
	NoSCRAM bool
	// SCRAMIterations is the iteration count of the SCRAM credentials
	// (MinSCRAMIterations to MaxSCRAMIterations; 0 for
	// DefaultSCRAMIterations).
	SCRAMIterations int
	// ReadPassword, if set, reads the password when Batch is not: it is
	// called with the prompt, "Password: " and then "Reenter password: ",
	// shows it and returns what the user typed. The tern command sets it
	// to read from a terminal without echo. When nil, the prompts go to
	// stderr and each password is one line of stdin.
	ReadPassword func(prompt string) (string, error)
}

// PasswdCommand runs tern passwd: it adds or changes a user's password in
// a password file, or deletes a user, and writes the file back atomically
// (see [EditablePasswordFile.WriteFile]). Setting a password also writes
// the user's SCRAM-SHA-256 and SCRAM-SHA-512 credentials, unless NoSCRAM.
// Without Batch it reads the password twice, with args.ReadPassword or,
// when that is nil, as lines of stdin after prompts on stderr; it does
// not turn off a terminal's echo itself, which is the CLI's business.
// Problems with other users' hashes, which would stop the broker from
// loading the file, are reported on stderr as warnings, and so is a
// bcrypt or argon2id hash written into a file whose other users have
// Mosquitto hashes (Mosquitto would not read it). stdout is not written.
func PasswdCommand(args PasswdArgs, stdin io.Reader, stdout, stderr io.Writer) error {
	switch {
	case args.File == "":
		return errors.New("no password file given")
	case args.User == "":
		return errors.New("no username given")
	case args.Delete && (args.Create || args.Batch || args.Password != "" || args.Argon2 || args.Mosquitto || args.Cost != 0 || args.NoSCRAM || args.SCRAMIterations != 0):
		return errors.New("-D takes only a file and a username")
	case args.Argon2 && args.Mosquitto:
		return errors.New("--argon2 and --mosquitto contradict each other: Mosquitto reads only its own $7$ and $6$ hashes, so --mosquitto writes $7$")
	case args.Mosquitto && args.Cost != 0 && (args.Cost < MinPBKDF2Iterations || args.Cost > MaxPBKDF2Iterations):
		return fmt.Errorf("--cost %d with --mosquitto: the PBKDF2 iteration count must be %d to %d (default %d)", args.Cost, MinPBKDF2Iterations, MaxPBKDF2Iterations, DefaultPBKDF2Iterations)
	case args.NoSCRAM && args.SCRAMIterations != 0:
		return errors.New("--scram-iterations and --no-scram contradict each other")
	case args.SCRAMIterations != 0 && (args.SCRAMIterations < MinSCRAMIterations || args.SCRAMIterations > MaxSCRAMIterations):
		return fmt.Errorf("SCRAM iteration count %d out of range %d to %d", args.SCRAMIterations, MinSCRAMIterations, MaxSCRAMIterations)
	case args.Batch && args.Password == "":
		return errors.New("-b needs a password after the username")
	case !args.Batch && args.Password != "":
		return errors.New("a password on the command line needs -b (or leave it out to be prompted)")
	}
	if !args.Delete {
		if err := CheckUsername(args.User); err != nil {
			return err
		}
	}

	var f *EditablePasswordFile
	if args.Create {
		f = NewEditablePasswordFile()
	} else {
		var err error
		f, err = ReadPasswordFileForEdit(args.File)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s does not exist (use -c to create it)", args.File)
		}
		if err != nil {
			return err
		}
	}

	if args.Delete {
		if !f.Delete(args.User) {
			return fmt.Errorf("user %q is not in %s", args.User, args.File)
		}
	} else {
		password := args.Password
		if !args.Batch {
			read := args.ReadPassword
			if read == nil {
				read = lineReader(stdin, stderr)
			}
			var err error
			if password, err = promptPassword(read); err != nil {
				return err
			}
		}
		opts := HashOptions{Argon2: args.Argon2, PBKDF2: args.Mosquitto, Cost: args.Cost, NoSCRAM: args.NoSCRAM, SCRAMIterations: args.SCRAMIterations}
		if err := f.Set(args.User, password, opts); err != nil {
			return err
		}
		if !args.Mosquitto {
			if other := f.mosquittoUser(args.User); other != "" {
				fmt.Fprintf(stderr, "warning: %s has Mosquitto hashes (user %q, for one), but %q's new hash is one Mosquitto cannot read: add --mosquitto if Mosquitto reads this file too\n", args.File, other, args.User)
			}
		}
	}
	if err := f.WriteFile(args.File); err != nil {
		return err
	}
	for _, p := range f.Problems() {
		fmt.Fprintf(stderr, "warning: %v; the broker will not load the file until it is fixed\n", p)
	}
	return nil
}

// lineReader reads passwords as lines of stdin, with the prompts on
// stderr.
func lineReader(stdin io.Reader, stderr io.Writer) func(string) (string, error) {
	r := bufio.NewReader(stdin)
	return func(prompt string) (string, error) {
		fmt.Fprint(stderr, prompt)
		return readLine(r)
	}
}

// promptPassword asks for the password twice.
func promptPassword(read func(prompt string) (string, error)) (string, error) {
	p1, err := read("Password: ")
	if err != nil {
		return "", err
	}
	if p1 == "" {
		return "", errors.New("empty password")
	}
	p2, err := read("Reenter password: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("passwords do not match")
	}
	return p1, nil
}

// readLine reads one line without its line ending. Other white space is
// part of the password.
func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err == io.EOF && s != "" {
		err = nil
	}
	if err == io.EOF {
		return "", errors.New("no password on standard input")
	}
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r"), nil
}
