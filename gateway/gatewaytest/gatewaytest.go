// Package gatewaytest runs an in-process gateway for the tests of other
// packages: everything embedded, on free loopback ports, under a test's
// temporary folder.
package gatewaytest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/gateway"
)

// Config returns the default configuration with every listener on a free
// loopback port and the data under dir.
func Config(dir string) config.Config {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.MQTT.Broker.Listen = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Chain.Listen = "127.0.0.1:0"
	// Publishers connect anonymously (tests of credentials turn this off).
	cfg.MQTT.Broker.AllowAnonymous = true
	cfg.HTTP.AllowAnonymous = true
	// Test devices are not in the device registry; the tests of
	// devices.unknown set flag and reject themselves.
	cfg.Devices.Unknown = device.UnknownAccept
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// Start runs a gateway with cfg, waits until it takes messages, and stops
// it when the test ends, failing the test if Run returned an error.
func Start(t testing.TB, cfg config.Config) *gateway.Gateway {
	t.Helper()
	gw, err := gateway.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	select {
	case <-gw.Ready():
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("gateway exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway not ready in 30s")
	}
	return gw
}
