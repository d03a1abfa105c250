//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
)

// TestExportMosquitto registers devices, a site and a grant, exports them
// with `coldchain devices export-mosquitto`, starts a real Mosquitto with
// the files and anonymous access off, and checks Mosquitto enforces what
// the embedded broker does: only registered users with their passwords
// connect; a device's readings on its own topic of a granted shipment and
// a site's handovers reach the gateway user, and nothing else does
// (another device's topic, a shipment not granted, an alert topic).
func TestExportMosquitto(t *testing.T) {
	bin := need(t, "COLDCHAIN_TEST_MOSQUITTO_BIN")
	natsURL, dir := authtest.Start(t)
	ctx := context.Background()
	add := func(p auth.Principal, pw string) {
		c, err := auth.NewCredential(p, []byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		if err := dir.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	add(auth.Principal{Kind: auth.KindDevice, ID: "L1", Org: "acme"}, "password-of-L1-0001")
	add(auth.Principal{Kind: auth.KindDevice, ID: "L2", Org: "acme"}, "password-of-L2-0001")
	add(auth.Principal{Kind: auth.KindSite, ID: "WH1", Org: "acme"}, "password-of-WH1-001")
	if err := dir.Grant(ctx, "SHP-1", "acme"); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	export := exec.Command(binary, "devices", "export-mosquitto", "--nats", natsURL, "--dir", out, "--gateway-user", "gw", "--password-stdin")
	export.Stdin = strings.NewReader("gateway-password-0001\n")
	if b, err := export.CombinedOutput(); err != nil {
		t.Fatalf("export-mosquitto: %v\n%s", err, b)
	}

	addr := freePort(t)
	startMosquitto(t, bin, out, addr, "")

	dial := func(id, user, pw string) (paho.Client, error) {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
			SetUsername(user).SetPassword(pw).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(true))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return nil, fmt.Errorf("%s: no CONNACK", id)
		}
		if tok.Error() == nil {
			t.Cleanup(func() { c.Disconnect(100) })
		}
		return c, tok.Error()
	}
	for _, bad := range [][2]string{{"", ""}, {"L1", "password-of-L2-0001"}, {"L9", "password-of-L1-0001"}, {"WH1", "password-of-WH1-001"}} {
		if _, err := dial("bad-"+bad[0], bad[0], bad[1]); err == nil {
			t.Errorf("%q/%q connected to the exported Mosquitto", bad[0], bad[1])
		}
	}

	gw, err := dial("gw", "gw", "gateway-password-0001")
	if err != nil {
		t.Fatalf("gateway user: %v", err)
	}
	var mu sync.Mutex
	var got []string
	if tok := gw.Subscribe("coldchain/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, m.Topic()+" "+string(m.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gateway subscribe: %v", tok.Error())
	}
	l1, err := dial("L1", "L1", "password-of-L1-0001")
	if err != nil {
		t.Fatalf("L1: %v", err)
	}
	site, err := dial("WH1", "site.WH1", "password-of-WH1-001")
	if err != nil {
		t.Fatalf("site: %v", err)
	}
	pub := func(c paho.Client, topic, payload string) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub(l1, "coldchain/v1/SHP-1/L1/readings", "own")
	pub(l1, "coldchain/v1/SHP-1/L2/readings", "forged-device")
	pub(l1, "coldchain/v1/SHP-2/L1/readings", "not-granted")
	pub(l1, "coldchain/v1/SHP-1/alerts", "forged-alert")
	pub(l1, "coldchain/v1/SHP-1/handovers", "forged-handover")
	pub(site, "coldchain/v1/SHP-2/handovers", "site-not-granted")
	pub(site, "coldchain/v1/SHP-1/handovers", "handover")
	pub(l1, "coldchain/v1/SHP-1/L1/readings", "last")
	want := []string{
		"coldchain/v1/SHP-1/L1/readings last",
		"coldchain/v1/SHP-1/L1/readings own",
		"coldchain/v1/SHP-1/handovers handover",
	}
	// Mosquitto delivers one publisher's messages in order: once L1's
	// "last" and the site's "handover" are in, anything forged before
	// them would be too.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := slices.Contains(got, want[0]) && slices.Contains(got, want[2])
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the gateway user got %q, want %q", got, want)
	}
}

// mosquittoLog is a running Mosquitto's log file.
type mosquittoLog string

// count returns how many lines of the log contain s.
func (l mosquittoLog) count(t *testing.T, s string) int {
	t.Helper()
	b, err := os.ReadFile(string(l))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), s)
}

// startMosquitto starts the real Mosquitto at bin on addr with the
// password_file and acl_file export-mosquitto wrote to dir, anonymous
// access off and every log line to a file, and, when tls is set, a second
// listener on it with files (tls is "addr|cert|key"). It is stopped by
// PID when the test ends.
func startMosquitto(t *testing.T, bin, dir, addr, tls string) mosquittoLog {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "mosquitto.log")
	conf := fmt.Sprintf(`per_listener_settings false
listener %s %s
allow_anonymous false
password_file %s
acl_file %s
user %s
log_type all
log_dest file %s
`, port, host, filepath.Join(dir, "passwd"), filepath.Join(dir, "acl"), me.Username, logFile)
	if tls != "" {
		parts := strings.Split(tls, "|")
		th, tp, _ := net.SplitHostPort(parts[0])
		conf += fmt.Sprintf("listener %s %s\ncertfile %s\nkeyfile %s\n", tp, th, parts[1], parts[2])
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // stopped by PID
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("mosquitto output:\n%s\nmosquitto log:\n%s", out.String(), b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return mosquittoLog(logFile)
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %s: %s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
