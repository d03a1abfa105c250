// Package mqtt ingests from an external MQTT broker (Mosquitto, EMQX, a
// cloud broker) through a paho subscriber: QoS 1, a persistent session
// under a fixed client id, and a PUBACK sent only once ingest has made the
// message durable.
package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/ingest"
	"github.com/coldchain/coldchain/pki"
)

// Config is the external broker's part of the mqtt configuration.
type Config struct {
	// URL of the broker, e.g. tcp://broker:1883 or ssl://broker:8883.
	// Setting it disables the embedded broker.
	URL      string `yaml:"url"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// ClientID is fixed so the broker keeps the session, and the messages
	// queued for it, while the gateway restarts.
	ClientID string `yaml:"client_id"`
	// SharedGroup, when set, subscribes as $share/<group>/... so several
	// gateways split the load (MQTT 5 shared subscriptions).
	SharedGroup string `yaml:"shared_group"`
	// TLS checks an ssl:// broker against a CA of its own and presents
	// a client certificate to one that asks for it.
	TLS pki.ClientTLS `yaml:"client_tls"`
}

// Topics are the subscriptions of the ingest subscriber.
var Topics = []string{"coldchain/v1/+/+/readings", "coldchain/v1/+/handovers"}

// Ingester is what the subscriber hands messages to.
//
// Start begins ingesting a message and returns once its appends are
// started: the subscriber calls it for each message in arrival order, so a
// device's records reach the journal in the order the broker delivered
// them, and waits for the ticket elsewhere, so appends still overlap.
type Ingester interface {
	Start(ctx context.Context, msg ingest.Message) (Ticket, error)
}

// Ticket is a started message; Wait returns once it is durable.
type Ticket interface {
	Wait(ctx context.Context) (ingest.Summary, error)
}

// Adapt makes an *ingest.Ingester a subscriber's Ingester.
func Adapt(in *ingest.Ingester) Ingester { return adapter{in} }

type adapter struct{ in *ingest.Ingester }

func (a adapter) Start(ctx context.Context, msg ingest.Message) (Ticket, error) {
	t, err := a.in.Start(ctx, msg)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// client is the part of paho's client the subscriber calls, so tests can
// swap it.
type client interface {
	Connect() paho.Token
	Disconnect(quiesce uint)
	IsConnectionOpen() bool
	Subscribe(topic string, qos byte, cb paho.MessageHandler) paho.Token
	Publish(topic string, qos byte, retained bool, payload any) paho.Token
}

// Subscriber consumes the ingest topics of an external broker.
type Subscriber struct {
	cfg       Config
	in        Ingester
	log       *zap.Logger
	client    client
	connected atomic.Bool

	// work is the context message handlers ingest under; it ends after
	// the drain of Run.
	work     context.Context
	stopWork context.CancelFunc
	closing  atomic.Bool
	inflight sync.WaitGroup
}

// New returns a subscriber for cfg; Run connects it. It fails only on
// unreadable TLS files (mqtt.client_tls).
func New(cfg Config, in Ingester, log *zap.Logger) (*Subscriber, error) {
	tc, err := cfg.TLS.Config("mqtt.client_tls")
	if err != nil {
		return nil, err
	}
	s := &Subscriber{cfg: cfg, in: in, log: log}
	s.work, s.stopWork = context.WithCancel(context.Background())
	opts := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(false). // keep the session: the broker queues for us while we are away
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetKeepAlive(30 * time.Second).
		// Messages are handed to ingest in arrival order (its Start is
		// quick and orders the appends); their durability is awaited
		// concurrently. With order not mattering, paho ran a goroutine per
		// message, and a backlog delivered at once (after a restart) could
		// journal a device's readings out of order: detected late.
		SetOrderMatters(true).
		SetAutoAckDisabled(true). // PUBACK only after JetStream has the records
		// A resumed session's queued messages can arrive right after
		// CONNACK, before onConnect has subscribed and so before paho has
		// a route for them; paho drops a message without a handler and,
		// with auto-ack off, never acks it, so the broker holds it until
		// the next reconnect. The default handler takes them.
		SetDefaultPublishHandler(s.handle).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			s.connected.Store(false)
			log.Warn("mqtt connection lost, reconnecting", zap.String("broker", cfg.URL), zap.Error(err))
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			log.Info("mqtt reconnecting", zap.String("broker", cfg.URL))
		})
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	s.client = paho.NewClient(opts)
	return s, nil
}

// Publish publishes from the gateway (alerts) over the subscriber's
// connection, waiting up to 10 s for the broker's acknowledgement at QoS 1.
func (s *Subscriber) Publish(topic string, payload []byte, qos byte) error {
	tok := s.client.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("mqtt publish %s: no acknowledgement in 10s", topic)
	}
	return tok.Error()
}

// Connected reports whether the subscriber is connected and subscribed.
func (s *Subscriber) Connected() bool { return s.connected.Load() }

func (s *Subscriber) topic(t string) string {
	if s.cfg.SharedGroup != "" {
		return "$share/" + s.cfg.SharedGroup + "/" + t
	}
	return t
}

// onConnect (re)subscribes after every connect. With a persistent session
// the broker still has the subscriptions; subscribing again is harmless and
// covers a broker that lost its state.
func (s *Subscriber) onConnect(c paho.Client) {
	for _, t := range Topics {
		tok := c.Subscribe(s.topic(t), 1, s.handle)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			s.log.Error("mqtt subscribe failed; reconnecting", zap.String("topic", t), zap.Error(tok.Error()))
			// Leave connected false; paho's keepalive or the next
			// reconnect brings us back here.
			return
		}
	}
	s.connected.Store(true)
	s.log.Info("mqtt subscribed", zap.String("broker", s.cfg.URL), zap.Strings("topics", Topics))
}

// handle ingests one message and acknowledges it only once durable. A
// message that arrives while closing is left unacknowledged: the broker
// delivers it again to the next session.
func (s *Subscriber) handle(_ paho.Client, m paho.Message) {
	if s.closing.Load() {
		return
	}
	s.inflight.Add(1)
	t, err := s.in.Start(s.work, ingest.Message{Transport: "mqtt", Topic: m.Topic(), Payload: m.Payload(), Received: time.Now()})
	if err != nil {
		s.inflight.Done()
		s.notIngested(m, err)
		return
	}
	go func() {
		defer s.inflight.Done()
		if _, err := t.Wait(s.work); err != nil {
			s.notIngested(m, err)
			return
		}
		m.Ack()
	}()
}

func (s *Subscriber) notIngested(m paho.Message, err error) {
	if !errors.Is(err, ingest.ErrStopping) {
		s.log.Error("mqtt message not ingested; left for redelivery", zap.String("topic", m.Topic()), zap.Error(err))
	}
}

// Run connects and consumes until ctx ends, then stops taking messages,
// lets those in flight finish for up to drain, and disconnects.
func (s *Subscriber) Run(ctx context.Context, drain time.Duration) error {
	tok := s.client.Connect()
	// With ConnectRetry the token completes only once connected; keep
	// waiting while ctx lives so a broker that starts later is fine.
	for !tok.WaitTimeout(time.Second) {
		if ctx.Err() != nil {
			s.client.Disconnect(0)
			s.stopWork()
			return nil
		}
	}
	if err := tok.Error(); err != nil {
		s.stopWork()
		return fmt.Errorf("mqtt connect %s: %w", s.cfg.URL, err)
	}
	<-ctx.Done()
	s.closing.Store(true)
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drain):
		s.log.Warn("mqtt drain timed out; unfinished messages will be redelivered", zap.Duration("drain", drain))
	}
	s.stopWork()
	<-done
	// paho sends PUBACKs from a queue of their own, which DISCONNECT can
	// overtake: give the last ones a moment, so fewer messages come again
	// to the next session (they would be stored once anyway).
	time.Sleep(100 * time.Millisecond)
	s.client.Disconnect(250)
	s.connected.Store(false)
	return nil
}
