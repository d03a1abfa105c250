// Package mqttbroker runs the mochi-mqtt broker inside the gateway, the
// default when no external broker URL is configured, and feeds ingest from
// a broker hook rather than through a subscriber connection.
//
// The hook runs in the publishing client's read loop before the broker
// answers, so a device's PUBACK means JetStream has its readings: the
// acknowledgement the device sees is the durability promise, end to end.
// It also removes the subscriber hop where mochi, under default limits,
// drops QoS 1 messages to a slow subscriber.
package mqttbroker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/ingest"
)

// Config is the embedded broker's part of the mqtt configuration.
type Config struct {
	// Listen is the MQTT TCP address, host:port.
	Listen string `yaml:"listen"`
	// MaxPacketSize is the largest MQTT packet the broker reads, in bytes.
	// It is larger than ingest.max_payload so an oversize payload reaches
	// ingest and is dead-lettered with a reason instead of the connection
	// being dropped.
	MaxPacketSize int `yaml:"max_packet_size"`
}

// Ingester is what the broker hands publishes to.
type Ingester interface {
	Ingest(ctx context.Context, msg ingest.Message) (ingest.Summary, error)
}

// Broker is a running embedded broker.
type Broker struct {
	srv    *mqtt.Server
	hook   *ingestHook
	cancel context.CancelFunc
	addr   string
}

// Start starts the broker listening on cfg.Listen. With a nil ingester it
// is a plain broker (tests and benchmarks use that to measure the broker
// alone, or to put a subscriber-based ingest behind it).
func Start(cfg Config, in Ingester, log *zap.Logger) (*Broker, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	// Subscribers (shippers watching alerts) get a deep write queue before
	// mochi drops messages for them.
	caps.MaximumClientWritesPending = 64 * 1024
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	// Per-device credentials and topic ACLs will replace allowAll.
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, err
	}
	// The hook's context ends only after the drain in Close: mochi's hook
	// API passes no context of its own.
	ctx, cancel := context.WithCancel(context.Background())
	hook := &ingestHook{in: in, srv: srv, log: log, ctx: ctx}
	if in != nil {
		if err := srv.AddHook(hook, nil); err != nil {
			cancel()
			return nil, err
		}
	}
	tcp := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: cfg.Listen})
	if err := srv.AddListener(tcp); err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt listen on %s: %w (is another broker running? set mqtt.listen or COLDCHAIN_MQTT_LISTEN)", cfg.Listen, err)
	}
	if err := srv.Serve(); err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt serve: %w", err)
	}
	return &Broker{srv: srv, hook: hook, cancel: cancel, addr: tcp.Address()}, nil
}

// Addr returns the address the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// Publish publishes from the gateway itself (alerts), bypassing ingest.
func (b *Broker) Publish(topic string, payload []byte, qos byte) error {
	return b.srv.Publish(topic, payload, false, qos)
}

// Close disconnects every client and stops listening, lets publishes being
// ingested finish for up to drain, then abandons the rest (their senders
// got no PUBACK and will send again).
func (b *Broker) Close(drain time.Duration) {
	_ = b.srv.Close() // Close always returns nil.
	done := make(chan struct{})
	go func() { b.hook.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drain):
		b.cancel()
		<-done
	}
	b.cancel()
}

// ingestHook hands every publish on an ingest topic to the ingester before
// the broker acknowledges it.
type ingestHook struct {
	mqtt.HookBase
	in  Ingester
	srv *mqtt.Server
	log *zap.Logger
	ctx context.Context
	wg  sync.WaitGroup
}

func (h *ingestHook) ID() string { return "coldchain-ingest" }

func (h *ingestHook) Provides(b byte) bool { return b == mqtt.OnPublish }

// OnPublish ingests the message, and lets the broker acknowledge it and
// pass it on to subscribers only once it is durable.
func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !IsIngestTopic(pk.TopicName) {
		return pk, nil
	}
	h.wg.Add(1)
	defer h.wg.Done()
	_, err := h.in.Ingest(h.ctx, ingest.Message{Transport: "mqtt", Topic: pk.TopicName, Payload: pk.Payload, Received: time.Now()})
	if err != nil {
		// Not durable: withhold the PUBACK and drop the connection, so the
		// client sends the message again after reconnecting
		// [MQTT-4.4.0-1].
		h.log.Warn("publish not acknowledged", zap.String("client", cl.ID), zap.String("topic", pk.TopicName), zap.Error(err))
		_ = h.srv.DisconnectClient(cl, packets.ErrServerUnavailable)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// IsIngestTopic reports whether devices publish records on topic: anything
// under coldchain/v1/ except what the gateway itself publishes
// (coldchain/v1/{shipment}/alerts). Malformed ingest topics are ingested
// too, so they are dead-lettered with a reason instead of vanishing.
func IsIngestTopic(topic string) bool {
	rest, ok := strings.CutPrefix(topic, "coldchain/v1/")
	if !ok {
		return false
	}
	parts := strings.Split(rest, "/")
	return !(len(parts) == 2 && parts[1] == "alerts")
}

// allowAll lets every client connect and use every topic. It is the
// embedded broker's policy until per-device credentials exist (README, "Not
// built yet"); it listens on loopback by default.
type allowAll struct{ mqtt.HookBase }

func (h *allowAll) ID() string { return "coldchain-allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
