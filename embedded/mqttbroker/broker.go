// Package mqttbroker runs the mochi-mqtt broker inside the gateway, the
// default when no external broker URL is configured, and feeds ingest from
// a broker hook rather than through a subscriber connection.
//
// The hook sees each publish in the publishing client's read loop, before
// the broker answers. A device's PUBACK means JetStream has its readings:
// the acknowledgement the device sees is the durability promise, end to
// end. It also removes the subscriber hop where mochi, under default
// limits, drops QoS 1 messages to a slow subscriber.
//
// Publishes are pipelined per connection. For a publish on an ingest topic
// the hook starts the ingest in the read loop (ingest.Ingester.Start
// validates the message and starts its append), queues the ticket to the
// connection's acker goroutine and lets the read loop go on to the next
// packet, so a connection has up to its window of messages (the broker's
// receive maximum, 1024) being journaled at once, and all connections
// together up to ingest.in_flight; beyond that the read loop waits, which
// is backpressure on that client. The acker waits for
// the tickets in the order they were queued and then sends the PUBACK
// itself and forwards the message to subscribers. The guarantees:
//
//   - No PUBACK before JetStream has the message's records (or their dead
//     letters).
//   - PUBACKs go out in the order the PUBLISH packets arrived
//     [MQTT-4.6.0-2], also across QoS 1 publishes on other topics, which
//     wait for the connection's queue before mochi answers them.
//   - A connection's records are journaled in arrival order (appends are
//     started in arrival order; only an append that fails and is retried
//     can land after later ones), and subscribers get its messages in
//     arrival order.
//   - When a message cannot be made durable (the gateway is stopping) its
//     PUBACK and every later one of the connection are withheld and the
//     client is disconnected: it sends them again after reconnecting
//     [MQTT-4.4.0-1].
//
// QoS 2 publishes on ingest topics take the same queue, but the read loop
// waits for their turn and outcome, and mochi then sends the PUBREC and
// forwards them as usual; QoS 2 is rare for devices and keeps its
// exactly-once handshake in mochi's hands.
package mqttbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/ingest"
	"github.com/coldchain/coldchain/pki"
)

// Config is the embedded broker's part of the mqtt configuration.
type Config struct {
	// Listen is the plaintext MQTT TCP address, host:port; empty turns
	// plaintext off (then TLSListen must be set).
	Listen string `yaml:"listen"`
	// TLSListen is the MQTT over TLS address (8883 by convention), served
	// with TLSCert and TLSKey; empty for none.
	TLSListen string `yaml:"tls_listen"`
	TLSCert   string `yaml:"tls_cert"`
	TLSKey    string `yaml:"tls_key"`
	// TLSClientCA, a PEM file, makes the TLS listener require a client
	// certificate it signed (mutual TLS). A client presenting one logs in
	// as the registered device (or site.<id> for a site) its common name
	// names, without a password.
	TLSClientCA string `yaml:"tls_client_ca"`
	// MaxPacketSize is the largest MQTT packet the broker reads, in bytes.
	// It is larger than ingest.max_payload so an oversize payload reaches
	// ingest and is dead-lettered with a reason instead of the connection
	// being dropped.
	MaxPacketSize int `yaml:"max_packet_size"`
	// AllowAnonymous admits clients that give no username. Off by
	// default: every device and site then connects with its own
	// credentials from the registry (coldchain devices add). The demo
	// turns it on; anonymous clients may publish on ingest topics and
	// watch alert topics, never '#' (auth.CanPublish, auth.CanSubscribe).
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// DeviceRate is how many messages a second one device or site may
	// publish, over all its connections, once DeviceBurst is spent (a
	// logger flushing what it kept offline); 0 is no limit. A publish
	// over the limit is not acknowledged and the client is disconnected
	// with reason 0x96, "message rate too high" (MQTT 5), so it sends
	// again later and nothing is lost. Anonymous clients (the demo) are
	// not limited.
	DeviceRate  float64 `yaml:"device_rate"`
	DeviceBurst int     `yaml:"device_burst"`
}

// ingester is what the broker hands publishes to: Start runs in the
// client's read loop, in arrival order, and the ticket's Wait in the
// connection's acker.
type ingester interface {
	Start(ctx context.Context, msg ingest.Message) (ticket, error)
}

// ticket is a publish being ingested (ingest.Ticket).
type ticket interface {
	Wait(ctx context.Context) (ingest.Summary, error)
}

// pipeline adapts *ingest.Ingester to ingester: Go does not let its Start,
// which returns *ingest.Ticket, stand in for one returning ticket.
type pipeline struct{ in *ingest.Ingester }

func (p pipeline) Start(ctx context.Context, msg ingest.Message) (ticket, error) {
	t, err := p.in.Start(ctx, msg)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Broker is a running embedded broker.
type Broker struct {
	srv     *mqtt.Server
	hook    *ingestHook
	cancel  context.CancelFunc
	addr    string
	tlsAddr string
}

// Start starts the broker listening on cfg.Listen. With a nil ingester it
// is a plain broker (tests and benchmarks use that to measure the broker
// alone, or to put a subscriber-based ingest behind it). With a nil
// Security everyone may connect and do anything, which only tests and
// benchmarks want; the gateway passes its registry.
func Start(cfg Config, in *ingest.Ingester, sec *Security, log *zap.Logger) (*Broker, error) {
	if in == nil {
		return start(cfg, nil, sec, log)
	}
	return start(cfg, pipeline{in}, sec, log)
}

func start(cfg Config, in ingester, sec *Security, log *zap.Logger) (*Broker, error) {
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
	var g *guard
	if sec == nil {
		if err := srv.AddHook(new(allowAll), nil); err != nil {
			return nil, err
		}
	} else {
		g = newGuard(sec, cfg, in != nil, log)
		if err := srv.AddHook(g, nil); err != nil {
			return nil, err
		}
	}
	// The hook's context ends only after the drain in Close: mochi's hook
	// API passes no context of its own.
	ctx, cancel := context.WithCancel(context.Background())
	abandon, cancelAbandon := context.WithCancel(context.Background())
	cancelAbandon()
	hook := &ingestHook{in: in, srv: srv, guard: g, log: log, ctx: ctx, abandon: abandon,
		// A compliant v5 client never has more unanswered QoS 1 and 2
		// publishes than the receive maximum we announce.
		window: max(int(caps.ReceiveMaximum), 1),
		// The ackers forward durable publishes through an inline client
		// of their own, which the hook lets through.
		fwd: srv.NewClient(nil, mqtt.LocalListener, "coldchain-ingest", true)}
	if in != nil {
		if err := srv.AddHook(hook, nil); err != nil {
			cancel()
			return nil, err
		}
	}
	b := &Broker{srv: srv, hook: hook, cancel: cancel}
	if cfg.Listen != "" {
		tcp := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: cfg.Listen})
		if err := srv.AddListener(tcp); err != nil {
			cancel()
			return nil, fmt.Errorf("mqtt listen on %s: %w (is another broker running? set mqtt.listen or COLDCHAIN_MQTT_LISTEN)", cfg.Listen, err)
		}
		b.addr = tcp.Address()
	}
	if cfg.TLSListen != "" {
		tc, err := pki.ServerConfig(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("mqtt.tls_cert, mqtt.tls_key, mqtt.tls_client_ca: %w", err)
		}
		tls := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tls", Address: cfg.TLSListen, TLSConfig: tc})
		if err := srv.AddListener(tls); err != nil {
			cancel()
			return nil, fmt.Errorf("mqtt TLS listen on %s: %w (set mqtt.tls_listen or COLDCHAIN_MQTT_TLS_LISTEN)", cfg.TLSListen, err)
		}
		b.tlsAddr = tls.Address()
	}
	if err := srv.Serve(); err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt serve: %w", err)
	}
	return b, nil
}

// Addr returns the plaintext address the broker listens on ("" for none).
func (b *Broker) Addr() string { return b.addr }

// TLSAddr returns the TLS address the broker listens on ("" for none).
func (b *Broker) TLSAddr() string { return b.tlsAddr }

// Publish publishes from the gateway itself (alerts), bypassing ingest.
func (b *Broker) Publish(topic string, payload []byte, qos byte) error {
	return b.srv.Publish(topic, payload, false, qos)
}

// Close disconnects every client and stops listening, lets publishes being
// ingested finish for up to drain, then abandons the rest (their senders
// got no PUBACK and will send again). It returns once every goroutine the
// hook started has exited.
func (b *Broker) Close(drain time.Duration) {
	// mochi's Close waits for the clients' read loops, which may wait for
	// ingest themselves (an in-flight slot, a full window, a QoS 2 turn):
	// the drain timer runs from the start.
	abandon := time.AfterFunc(drain, b.cancel)
	_ = b.srv.Close() // Close always returns nil.
	b.hook.wg.Wait()
	abandon.Stop()
	b.cancel()
}

// ingestHook hands every publish on an ingest topic to the ingester and
// acknowledges it once it is durable.
type ingestHook struct {
	mqtt.HookBase
	in  ingester
	srv *mqtt.Server
	// guard, when set, authorizes each publish before it is ingested.
	guard *guard
	fwd   *mqtt.Client // the inline client forwarding durable publishes
	log   *zap.Logger
	// ctx ends after the drain in Close (mochi's hook API passes no
	// context of its own); abandon has ended already.
	ctx, abandon context.Context
	// window is the most tickets queued for one connection's acker.
	window int
	// conns holds the *conn of each connected *mqtt.Client that published
	// on an ingest topic.
	conns sync.Map
	// wg counts the ackers.
	wg sync.WaitGroup
}

// conn is one client connection's acker queue.
type conn struct {
	cl *mqtt.Client
	// queue holds the connection's publishes in arrival order. It is
	// buffered, unlike most channels here, because its capacity is the
	// connection's window: how many publishes are journaled at once.
	// Only the client's read loop sends on it and closes it (OnPublish and
	// OnDisconnect run there).
	queue chan pending
	// failed is set when a publish could not be made durable: nothing
	// later of the connection is acknowledged.
	failed atomic.Bool
}

// pending is one queued publish.
type pending struct {
	t  ticket // nil for a publish on another topic waiting for its turn
	pk packets.Packet
	// turn, when not nil, gets the outcome instead of the acker answering
	// the publish: the read loop waits for it and lets mochi answer.
	turn chan error
	// denied is a publish the client was not allowed to make: the acker
	// answers it "not authorized" in its turn and nothing is ingested.
	denied bool
	// limited is a publish over the sender's rate limit: in its turn the
	// acker disconnects the client, answering neither it nor anything
	// after it, and nothing of it is ingested.
	limited *auth.Denial
}

// errAbandoned is the outcome of a publish queued after one that failed.
var errAbandoned = errors.New("an earlier publish of the connection was not acknowledged")

// errDenied is the outcome of a publish the client may not make.
var errDenied = errors.New("not authorized")

// errLimited is the outcome of a publish over the sender's rate limit.
var errLimited = errors.New("message rate too high")

func (h *ingestHook) ID() string { return "coldchain-ingest" }

func (h *ingestHook) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnDisconnect }

// OnPublish starts ingesting a publish on an ingest topic and queues it to
// the connection's acker; mochi neither answers nor forwards it. A QoS 1
// or 2 publish on another topic of a connection with a queue waits for its
// turn, so PUBACKs keep the arrival order.
func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	var org string // the sender's, for its dead letters
	if h.guard != nil {
		p, ok := h.guard.publish(cl, pk.TopicName)
		if !ok {
			return pk, h.refuse(cl, pk, pending{pk: pk, denied: true})
		}
		if d := h.guard.limit(p); d != nil {
			return pk, h.refuse(cl, pk, pending{pk: pk, limited: d})
		}
		org = p.Org
	}
	if !IsIngestTopic(pk.TopicName) {
		if pk.FixedHeader.Qos == 0 {
			return pk, nil
		}
		v, ok := h.conns.Load(cl)
		if !ok {
			return pk, nil
		}
		return pk, h.await(v.(*conn), pending{pk: pk, turn: make(chan error, 1)})
	}
	c := h.conn(cl)
	if c.failed.Load() {
		return pk, packets.ErrRejectPacket
	}
	t, err := h.in.Start(h.ctx, ingest.Message{Transport: "mqtt", Topic: pk.TopicName, Payload: pk.Payload, Received: time.Now(), Org: org})
	if err != nil {
		// The broker is closing: the client sends the message again.
		h.fail(c, pk, err)
		return pk, packets.ErrRejectPacket
	}
	p := pending{t: t, pk: pk}
	if pk.FixedHeader.Qos == 2 {
		p.turn = make(chan error, 1)
		return pk, h.await(c, p)
	}
	c.queue <- p
	return pk, packets.ErrRejectPacket
}

// refuse answers a publish the client may not make (p, denied or
// limited) in its turn. A denied QoS 0 one is dropped; a denied QoS 1 or 2
// one is answered "not authorized" (MQTT 5), or the client disconnected
// (3.1.1 has no negative acknowledgement). A limited one of any QoS
// disconnects the client. Nothing of it is ingested or forwarded.
func (h *ingestHook) refuse(cl *mqtt.Client, pk packets.Packet, p pending) error {
	if pk.FixedHeader.Qos == 0 && p.limited == nil {
		return packets.ErrRejectPacket
	}
	c := h.conn(cl)
	if c.failed.Load() {
		return packets.ErrRejectPacket
	}
	if pk.FixedHeader.Qos == 2 {
		p.turn = make(chan error, 1)
		_ = h.await(c, p)
		return packets.ErrRejectPacket
	}
	c.queue <- p
	return packets.ErrRejectPacket
}

// await queues p and waits for its outcome: nil lets mochi answer and
// forward the publish, ErrRejectPacket drops it unanswered.
func (h *ingestHook) await(c *conn, p pending) error {
	c.queue <- p
	if err := <-p.turn; err != nil {
		return packets.ErrRejectPacket
	}
	return nil
}

// conn returns the client's connection state, starting its acker on the
// first publish.
func (h *ingestHook) conn(cl *mqtt.Client) *conn {
	if v, ok := h.conns.Load(cl); ok {
		return v.(*conn)
	}
	c := &conn{cl: cl, queue: make(chan pending, h.window)}
	h.conns.Store(cl, c)
	h.wg.Add(1)
	go h.ack(c)
	return c
}

// OnDisconnect ends the client's acker once it has worked through its
// queue. mochi calls it in the client's read loop after the last
// OnPublish.
func (h *ingestHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if v, ok := h.conns.LoadAndDelete(cl); ok {
		close(v.(*conn).queue)
	}
}

// ack is a connection's acker: it waits for the queued publishes in
// order, then acknowledges and forwards each one. After a failure it only
// waits the rest out to free their in-flight slots.
func (h *ingestHook) ack(c *conn) {
	defer h.wg.Done()
	for p := range c.queue {
		ctx := h.ctx
		if c.failed.Load() {
			ctx = h.abandon
		}
		var err error
		if p.t != nil {
			_, err = p.t.Wait(ctx)
		}
		switch {
		case c.failed.Load():
			err = errAbandoned
		case p.denied:
			err = errDenied
			h.notAuthorized(c, p.pk)
		case p.limited != nil:
			err = errLimited
			c.failed.Store(true)
			h.guard.deny(c.cl, p.limited)
			_ = h.srv.DisconnectClient(c.cl, packets.Code{Code: packets.ErrMessageRateTooHigh.Code, Reason: p.limited.Detail})
		case err != nil:
			h.fail(c, p.pk, err)
		}
		if p.turn != nil {
			p.turn <- err
			continue
		}
		if err != nil {
			continue
		}
		if p.pk.FixedHeader.Qos > 0 {
			// Built as mochi's buildAck would, but with reason code
			// 0x00 (success) rather than its 0x01 ("granted QoS 1", no
			// PUBACK reason code [MQTT-3.4.2-1]) and without copying the
			// publish's properties: a v5 PUBACK with success and no
			// properties is just the packet id, as a v3 one is.
			ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: p.pk.PacketID, ReasonCode: packets.CodeSuccess.Code}
			if err := c.cl.WritePacket(ack); err != nil {
				// The connection is gone: the client sends the message
				// again, and it is forwarded then.
				continue
			}
		}
		h.forward(p.pk)
	}
}

// notAuthorized answers a refused QoS 1 or 2 publish: a PUBACK or PUBREC
// with reason "not authorized" for MQTT 5; an MQTT 3.1.1 client, which has
// no such answer, is disconnected [MQTT-3.3.5-2] and nothing later of the
// connection is acknowledged.
func (h *ingestHook) notAuthorized(c *conn, pk packets.Packet) {
	if c.cl.Properties.ProtocolVersion != 5 {
		c.failed.Store(true)
		_ = h.srv.DisconnectClient(c.cl, packets.ErrNotAuthorized)
		return
	}
	typ := byte(packets.Puback)
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	_ = c.cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: pk.PacketID, ReasonCode: packets.ErrNotAuthorized.Code})
}

// fail withholds the acknowledgement of pk and of everything after it and
// disconnects the client, so it sends them again after reconnecting
// [MQTT-4.4.0-1].
func (h *ingestHook) fail(c *conn, pk packets.Packet, err error) {
	if c.failed.Swap(true) {
		return
	}
	h.log.Warn("publish not acknowledged", zap.String("client", c.cl.ID), zap.String("topic", pk.TopicName), zap.Error(err))
	_ = h.srv.DisconnectClient(c.cl, packets.ErrServerUnavailable)
}

// forward passes a durable publish on to the topic's subscribers as mochi
// would have: retained if it asks to be, with its properties. It skips the
// broker when nobody subscribes, the usual case for device topics.
func (h *ingestHook) forward(pk packets.Packet) {
	if !pk.FixedHeader.Retain {
		subs := h.srv.Topics.Subscribers(pk.TopicName)
		if len(subs.Subscriptions)+len(subs.Shared)+len(subs.InlineSubscriptions) == 0 {
			return
		}
	}
	// The topic alias was resolved on the way in and belongs to the
	// publisher's connection.
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
	if err := h.srv.InjectPacket(h.fwd, pk); err != nil {
		h.log.Warn("forward publish", zap.String("topic", pk.TopicName), zap.Error(err))
	}
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

// allowAll lets every client connect and use every topic: the plain
// broker of tests and benchmarks (Start with a nil Security).
type allowAll struct{ mqtt.HookBase }

func (h *allowAll) ID() string { return "coldchain-allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
