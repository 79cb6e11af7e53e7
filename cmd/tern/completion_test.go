package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
)

// shellCandidates runs script with shell and args, tern on PATH, and
// returns the candidates it printed, each on a line of its own as
// <<candidate>> (so that terminal noise around them does not count).
func shellCandidates(t *testing.T, shell string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(ternBinary(t))+":"+os.Getenv("PATH"), "HOME="+cmd.Dir, "XDG_CONFIG_HOME="+cmd.Dir)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %q: %v\n%s\n%s", shell, args, err, out, stderr)
	}
	var got []string
	for _, m := range regexp.MustCompile(`<<([^<>\r\n]*)>>`).FindAllStringSubmatch(string(out), -1) {
		if !slices.Contains(got, m[1]) {
			got = append(got, m[1])
		}
	}
	return got
}

// bashComplete drives the completion that `source <(tern completion
// bash)` installs, as bash does on Tab: COMP_WORDS and COMP_CWORD set,
// the function that `complete -p tern` names called, COMPREPLY printed.
const bashComplete = `
source /usr/share/bash-completion/bash_completion
source <(tern completion bash)
spec=$(complete -p tern) || exit 3
fn=${spec##*-F }; fn=${fn%% *}
[[ $fn == __start_tern ]] || { echo "complete -p tern: $spec" >&2; exit 4; }
compopt() { :; } # only valid while bash itself runs a completion
line=$1
read -ra COMP_WORDS <<< "$line"
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$line COMP_POINT=${#line} COMP_TYPE=9 COMP_KEY=9
"$fn" tern "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '<<%s>>\n' "${COMPREPLY[@]}"
`

// zshComplete types the line and a Tab into an interactive zsh (zsh/zpty)
// with compinit and tern's completion loaded; compadd is wrapped to print
// what the completion adds. It types only once zle has the terminal
// (zle-line-init prints a marker): typed earlier, the line discipline
// would take the Tab and the ^U itself.
const zshComplete = `
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PROMPT= ; RPROMPT= ; autoload -U compinit; compinit -u -D'
zpty -w z 'source <(tern completion zsh)'
zpty -w z 'compadd() { local -a m; builtin compadd -O m "$@"; (( $#m )) && print -rl -- "<<"${^m}">>" >/dev/tty; builtin compadd "$@" }'
zpty -w z "zstyle ':completion:*' menu no; LISTMAX=100000"
zpty -w z 'zle-line-init() { print -rn -- "ZLE""ON" >/dev/tty }; zle -N zle-line-init'
local out
zpty -r z out '*ZLEON*' || exit 5
zpty -w -n z "$1"$'\t'
zpty -w z $'\C-u print -r -- DONE$((1+1))'
while zpty -r z out; do
	[[ $out == *DONE2* ]] && break
	print -r -- "$out"
done
zpty -d z
`

// fishComplete asks fish for the completions of the line.
const fishComplete = `tern completion fish | source; for c in (complete -C "$argv[1]"); echo "<<"(string split -f1 \t -- $c)">>"; end`

// TestShellCompletion loads the generated completion scripts in real
// shells and completes "tern sub --" (the flags, Tern's own included)
// and "tern pub -D " (-D's commands). bash needs the bash-completion
// package, as cobra's scripts do; zsh and fish are driven when
// installed.
func TestShellCompletion(t *testing.T) {
	ternBinary(t)
	subFlags := []string{"--topic", "--verbose", "--format", "--no-local", "--retain-handling", "--sub-id", "--max-inflight", "--protocol-version", "--proxy", "--capath", "--tls-version"}
	dCommands := []string{"connect", "publish", "will", "disconnect"}
	check := func(t *testing.T, line string, got []string, want []string, not ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%q completes to %q, lacking %q", line, got, w)
			}
		}
		for _, n := range not {
			if slices.Contains(got, n) {
				t.Errorf("%q completes to %q, which has %q", line, got, n)
			}
		}
	}
	t.Run("bash", func(t *testing.T) {
		bash := mqtttest.NeedBinary(t, "bash", "bash")
		if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err != nil {
			t.Skip("bash completion needs the bash-completion package (Debian package bash-completion)")
		}
		script := filepath.Join(t.TempDir(), "complete.bash")
		os.WriteFile(script, []byte(bashComplete), 0o644)
		check(t, "tern sub --", shellCandidates(t, bash, "--norc", "--noprofile", script, "tern sub --"), subFlags, "--message", "--stdin-line")
		check(t, "tern pub -D ", shellCandidates(t, bash, "--norc", "--noprofile", script, "tern pub -D "), dCommands, "subscribe")
		check(t, "tern sub -D ", shellCandidates(t, bash, "--norc", "--noprofile", script, "tern sub -D "), []string{"subscribe", "unsubscribe"})
	})
	t.Run("zsh", func(t *testing.T) {
		zsh := mqtttest.NeedBinary(t, "zsh", "zsh")
		script := filepath.Join(t.TempDir(), "complete.zsh")
		os.WriteFile(script, []byte(zshComplete), 0o644)
		check(t, "tern sub --", shellCandidates(t, zsh, "-f", script, "tern sub --"), subFlags, "--message")
		check(t, "tern pub -D ", shellCandidates(t, zsh, "-f", script, "tern pub -D "), dCommands, "subscribe")
	})
	t.Run("fish", func(t *testing.T) {
		fish := mqtttest.NeedBinary(t, "fish", "fish")
		check(t, "tern sub --", shellCandidates(t, fish, "--no-config", "-c", fishComplete, "tern sub --"), subFlags, "--message")
		check(t, "tern pub -D ", shellCandidates(t, fish, "--no-config", "-c", fishComplete, "tern pub -D "), dCommands, "subscribe")
	})
}
