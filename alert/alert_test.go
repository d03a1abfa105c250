package alert

import (
	"strings"
	"testing"
	"time"
)

// TestSignature checks the webhook signature against a known answer from
// `printf '%s' '{"a":1}' | openssl dgst -sha256 -hmac s3cret`.
func TestSignature(t *testing.T) {
	got := Signature("s3cret", []byte(`{"a":1}`))
	want := "sha256=5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d"
	if got != want {
		t.Fatalf("got %s", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"no profile", func(c *Config) { c.Profile = "" }, "alerts.profile"},
		{"webhook url", func(c *Config) { c.Webhooks = []WebhookConfig{{URL: "ftp://x", Secret: "s"}} }, "alerts.webhooks[0].url"},
		{"webhook secret", func(c *Config) { c.Webhooks = []WebhookConfig{{URL: "https://x"}} }, "alerts.webhooks[0].secret"},
		{"history", func(c *Config) { c.History = 0 }, "history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mut(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v does not name %s", err, tc.want)
			}
		})
	}
}

// TestSometimes: one late-reading line per lateLogEvery, saying how many
// were left out.
func TestSometimes(t *testing.T) {
	var l sometimes
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	if n, ok := l.take(at); !ok || n != 0 {
		t.Fatalf("first: %d %v", n, ok)
	}
	for i := range 5 {
		if _, ok := l.take(at.Add(time.Duration(i+1) * time.Second)); ok {
			t.Fatalf("line %d within %v logged", i+2, lateLogEvery)
		}
	}
	if n, ok := l.take(at.Add(lateLogEvery)); !ok || n != 5 {
		t.Fatalf("after %v: %d %v, want 5 true", lateLogEvery, n, ok)
	}
	if _, ok := l.take(at.Add(lateLogEvery + time.Second)); ok {
		t.Fatal("logged again within the interval")
	}
}
