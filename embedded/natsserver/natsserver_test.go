package natsserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "nats.token")
	if _, err := ReadToken(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadToken of a missing file: %v, want os.ErrNotExist", err)
	}
	tok, err := TokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 { // 32 bytes, base64url without padding
		t.Errorf("token %q has %d characters, want 43", tok, len(tok))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := TokenFile(path)
	if err != nil || again != tok {
		t.Errorf("second TokenFile gave %q, %v; want the kept %q", again, err, tok)
	}
	other, err := TokenFile(filepath.Join(t.TempDir(), "nats.token"))
	if err != nil || other == tok {
		t.Errorf("a second data dir got %q, %v: tokens must be random", other, err)
	}

	if err := os.WriteFile(path, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := TokenFile(path); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("an empty token file: %v, want a clear error", err)
	}
}
