package pgtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func runPG(stdin string, name string, args ...string) (stdout, stderr string, err error) {
	return runBin(stdin, Bin(name), args...)
}

// runBin runs the binary at path as the PostgreSQL user, stdin fed from stdin when not "".
func runBin(stdin string, path string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(path, args...)
	RunAs(cmd)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err = cmd.Run()
	return o.String(), e.String(), err
}

// RunPG runs a binary from BinDir as the PostgreSQL user and returns its combined output;
// it fails the test (with the output) when the command fails. For pg_verifybackup,
// pg_waldump, pg_dump, ...
func RunPG(t testing.TB, name string, args ...string) string {
	t.Helper()
	SkipShort(t)
	out, err := RunPGErr(name, args...)
	if err != nil {
		t.Fatalf("pgtest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// RunPGErr is RunPG returning the error (with combined output) instead of failing.
func RunPGErr(name string, args ...string) (string, error) {
	cmd := exec.Command(Bin(name), args...)
	RunAs(cmd)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// Controldata runs pg_controldata on a data dir and returns its fields
// ("Database system identifier", "Latest checkpoint's TimeLineID", "Bytes per WAL segment", ...).
func Controldata(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := RunPG(t, "pg_controldata", "-D", dir)
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}
