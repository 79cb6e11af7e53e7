package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// EditablePasswordFile is a password file opened for editing, as tern
// passwd does: comments, blank lines and the order of users are kept, Set
// changes a user's hash in place or appends a new user, and WriteFile
// replaces the file atomically.
//
// Unlike [LoadPasswordFile], reading for editing accepts lines whose hash
// is unknown or malformed (for example an "$apr1$" MD5 hash from
// htpasswd), so that Set can replace them one by one; [EditablePasswordFile.Problems] lists
// them. Syntax errors and duplicate users are still errors.
type EditablePasswordFile struct {
	lines []pwLine
}

// NewEditablePasswordFile returns an empty password file, for creating one.
func NewEditablePasswordFile() *EditablePasswordFile {
	return &EditablePasswordFile{}
}

// ReadPasswordFileForEdit reads a password file for editing.
func ReadPasswordFileForEdit(path string) (*EditablePasswordFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines, err := parsePasswordLines(path, data, true)
	if err != nil {
		return nil, err
	}
	return &EditablePasswordFile{lines: lines}, nil
}

// Users returns the users in file order.
func (f *EditablePasswordFile) Users() []string {
	var us []string
	for _, l := range f.lines {
		if l.user != "" {
			us = append(us, l.user)
		}
	}
	return us
}

// Problems returns, with file and line, each hash that [LoadPasswordFile]
// would refuse.
func (f *EditablePasswordFile) Problems() []error {
	var errs []error
	for _, l := range f.lines {
		if l.problem != nil {
			errs = append(errs, l.problem)
		}
	}
	return errs
}

// CheckUsername reports whether user can be written to a password file:
// not empty, no ':' (the separator), no control characters, no leading or
// trailing white space, and no leading '#' (which starts a comment).
func CheckUsername(user string) error {
	switch {
	case user == "":
		return errors.New("empty username")
	case strings.Contains(user, ":"):
		return fmt.Errorf("username %q contains ':', which separates the username from the hash in a password file", user)
	case strings.IndexFunc(user, unicode.IsControl) >= 0:
		return fmt.Errorf("username %q contains a control character", user)
	case strings.TrimSpace(user) != user:
		return fmt.Errorf("username %q begins or ends with white space", user)
	case user[0] == '#':
		return fmt.Errorf("username %q begins with '#', which starts a comment in a password file", user)
	}
	return nil
}

// Set sets user's password, hashed as opts says, with SCRAM-SHA-256 and
// SCRAM-SHA-512 credentials unless opts.NoSCRAM: the user's line is
// replaced in place (SCRAM fields it had included), or a new line is
// appended.
func (f *EditablePasswordFile) Set(user, password string, opts HashOptions) error {
	if err := CheckUsername(user); err != nil {
		return err
	}
	if opts.NoSCRAM && opts.SCRAMIterations != 0 {
		return errors.New("a SCRAM iteration count without SCRAM credentials")
	}
	h, err := HashPassword(password, opts)
	if err != nil {
		return err
	}
	cred, err := parseHash(h)
	if err != nil {
		return err // cannot happen: HashPassword makes valid hashes
	}
	text := user + ":" + h
	var set scramSet
	if !opts.NoSCRAM {
		set = scramSet{}
		for _, mech := range []string{SCRAMSHA256, SCRAMSHA512} {
			field, err := SCRAMCredential(mech, password, opts.SCRAMIterations)
			if err != nil {
				return err
			}
			m, c, err := parseSCRAMField(field)
			if err != nil {
				return err // cannot happen: SCRAMCredential makes valid fields
			}
			set[m.Name()] = c
			text += ":" + field
		}
	}
	l := pwLine{text: text, user: user, hash: h, cred: cred, scram: set}
	for i := range f.lines {
		if f.lines[i].user == user {
			f.lines[i] = l
			return nil
		}
	}
	f.lines = append(f.lines, l)
	return nil
}

// Delete removes user and reports whether it was there.
func (f *EditablePasswordFile) Delete(user string) bool {
	for i := range f.lines {
		if f.lines[i].user == user {
			f.lines = append(f.lines[:i], f.lines[i+1:]...)
			return true
		}
	}
	return false
}

// Bytes returns the file's contents.
func (f *EditablePasswordFile) Bytes() []byte {
	var b strings.Builder
	for _, l := range f.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// WriteFile writes the file to path atomically: to a temporary file in the
// same directory, synced, then renamed over path, so that a broker
// reloading it sees the old or the new file, never half of one. The file
// gets mode 0600. If path is a symbolic link, its target is replaced; if
// it exists, its owner and group are kept where the process may set them.
func (f *EditablePasswordFile) WriteFile(path string) error {
	target := path
	old, err := os.Stat(path)
	switch {
	case err == nil:
		if t, err := filepath.EvalSymlinks(path); err == nil {
			target = t
		}
	case errors.Is(err, os.ErrNotExist):
		old = nil
	default:
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if old != nil {
		keepOwner(tmp, old)
	}
	if _, err := tmp.Write(f.Bytes()); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	done = true
	return nil
}

// mosquittoUser returns a user other than except whose hash Mosquitto can
// read, or "".
func (f *EditablePasswordFile) mosquittoUser(except string) string {
	for _, l := range f.lines {
		if l.user != "" && l.user != except && l.cred.isMosquitto() {
			return l.user
		}
	}
	return ""
}
