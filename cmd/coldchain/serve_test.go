package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// serve on a port already in use exits 1 with one line naming the key to
// change, and no stack trace.
func TestServePortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	t.Setenv("COLDCHAIN_DATA_DIR", t.TempDir())
	t.Setenv("COLDCHAIN_NATS_LISTEN", taken.Addr().String())
	t.Setenv("COLDCHAIN_MQTT_LISTEN", "127.0.0.1:0")
	t.Setenv("COLDCHAIN_HTTP_LISTEN", "127.0.0.1:0")
	t.Setenv("COLDCHAIN_CHAIN_LISTEN", "127.0.0.1:0")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, &stderr)
	}
	want := "coldchain: nats.listen: " + taken.Addr().String() + " is already in use"
	if !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to start with %q", &stderr, want)
	}
	if strings.Contains(stderr.String(), "goroutine") || strings.Contains(stderr.String(), ".go:") {
		t.Errorf("stderr has a stack trace:\n%s", &stderr)
	}
}
