package mqtt

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/embedded/mqttbroker"
	"github.com/coldchain/coldchain/ingest"
	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/pki/pkitest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("time.Sleep"))
}

// recorder is an ingester that remembers what it was given.
type recorder struct {
	mu     sync.Mutex
	topics map[string]int
}

func (r *recorder) Start(_ context.Context, msg ingest.Message) (Ticket, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.topics[msg.Topic+" "+string(msg.Payload)]++
	return done{}, nil
}

// done is a ticket that is durable at once.
type done struct{}

func (done) Wait(context.Context) (ingest.Summary, error) {
	return ingest.Summary{Records: 1, Accepted: 1}, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.topics)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSubscriberPersistentSession runs the paho subscriber against a plain
// broker: it receives what is published, and what is published while it is
// stopped arrives when it comes back, because the session is persistent.
func TestSubscriberPersistentSession(t *testing.T) {
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	b, err := mqttbroker.Start(mqttbroker.Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20}, nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(time.Second)
	rec := &recorder{topics: map[string]int{}}
	cfg := Config{URL: "tcp://" + b.Addr(), ClientID: "gw-test"}

	run := func() (context.CancelFunc, chan error, *Subscriber) {
		s, err := New(cfg, rec, log)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		stopped := make(chan struct{})
		go func() { done <- s.Run(ctx, time.Second); close(stopped) }()
		// On a failed check, stop the subscriber before the test ends
		// so it does not log into a finished test.
		t.Cleanup(func() { cancel(); <-stopped })
		eventually(t, "subscribed", s.Connected)
		return cancel, done, s
	}
	cancel, done, _ := run()

	pub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			tok := pub.Publish(fmt.Sprintf("coldchain/v1/S1/D%d/readings", i%3), 1, false, fmt.Sprint(i))
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
		}
	}
	send(0, 100)
	pub.Publish("coldchain/v1/S1/alerts", 1, false, "not for ingest").Wait()
	eventually(t, "first 100", func() bool { return rec.count() == 100 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	send(100, 150) // queued by the broker for the absent session
	cancel, done, _ = run()
	eventually(t, "the 50 queued while away", func() bool { return rec.count() == 150 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every message arrived, and nothing else; some may have arrived twice.
	// paho queues a PUBACK on its own channel, which its DISCONNECT can
	// overtake, so a message acknowledged just before a stop can be
	// delivered again to the next session: MQTT delivery is at least once,
	// and the journal stores it once (journal and integration tests).
	for i := range 150 {
		k := fmt.Sprintf("coldchain/v1/S1/D%d/readings %d", i%3, i)
		switch n := rec.topics[k]; {
		case n == 0:
			t.Errorf("%s never ingested", k)
		case n > 1:
			t.Logf("%s ingested %d times (redelivered to the next session)", k, n)
		}
	}
	if len(rec.topics) != 150 {
		t.Errorf("%d distinct messages ingested, want the 150 readings (not the alert)", len(rec.topics))
	}
}

// TestSubscriberOverTLS: with mqtt.client_tls the subscriber connects to
// an ssl:// broker that requires a client certificate, and ingests what
// is published there.
func TestSubscriberOverTLS(t *testing.T) {
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	files := pkitest.New(t, "coldchain-gateway")
	b, err := mqttbroker.Start(mqttbroker.Config{TLSListen: "127.0.0.1:0", TLSCert: files.ServerCert, TLSKey: files.ServerKey,
		TLSClientCA: files.CA, MaxPacketSize: 1 << 20}, nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(time.Second)
	rec := &recorder{topics: map[string]int{}}
	s, err := New(Config{URL: "ssl://" + b.TLSAddr(), ClientID: "gw-tls", TLS: files.Client()}, rec, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	eventually(t, "subscribed over TLS", s.Connected)

	tc, err := pki.ClientTLS{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey}.Config("test")
	if err != nil {
		t.Fatal(err)
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + b.TLSAddr()).SetClientID("pub").SetTLSConfig(tc))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	if tok := pub.Publish("coldchain/v1/S1/D1/readings", 1, false, "over tls"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	eventually(t, "the reading ingested", func() bool { return rec.count() == 1 })

	if _, err := New(Config{URL: "ssl://" + b.TLSAddr(), ClientID: "x", TLS: pki.ClientTLS{Cert: files.ClientCert}}, rec, log); err == nil ||
		!strings.Contains(err.Error(), "mqtt.client_tls.cert and mqtt.client_tls.key") {
		t.Fatalf("half a client certificate: %v", err)
	}
}

// ordered is an ingester whose tickets finish only when released, and that
// remembers the order messages were started in.
type ordered struct {
	mu      sync.Mutex
	started []string
	release chan struct{}
}

func (o *ordered) Start(_ context.Context, msg ingest.Message) (Ticket, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started = append(o.started, string(msg.Payload))
	return o, nil
}

func (o *ordered) Wait(ctx context.Context) (ingest.Summary, error) {
	select {
	case <-o.release:
		return ingest.Summary{Records: 1, Accepted: 1}, nil
	case <-ctx.Done():
		return ingest.Summary{}, ingest.ErrStopping
	}
}

func (o *ordered) order() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.started...)
}

// TestSubscriberKeepsArrivalOrder: messages are started in the order they
// arrive, while earlier ones are still not durable: a device's readings
// reach the journal in order, and their appends overlap. (With a goroutine
// per message, as paho runs handlers when order does not matter, they were
// started out of order.) ZZ_MQTT=tcp://host:port runs it against another
// broker, e.g. the Mosquitto of scripts/peers.sh.
func TestSubscriberKeepsArrivalOrder(t *testing.T) {
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	b, err := mqttbroker.Start(mqttbroker.Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20}, nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(time.Second)
	brokerURL := "tcp://" + b.Addr()
	if u := os.Getenv("ZZ_MQTT"); u != "" {
		brokerURL = u
	}
	cfg := Config{URL: brokerURL, ClientID: "gw-order-" + fmt.Sprint(time.Now().UnixNano())}
	o := &ordered{release: make(chan struct{})}
	s, err := New(cfg, o, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, time.Second) }()
	eventually(t, "subscribed", s.Connected)
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(brokerURL).SetClientID("pub-order"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	const n = 200
	topic := fmt.Sprintf("coldchain/v1/S1/D%d/readings", time.Now().UnixNano())
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = pub.Publish(topic, 1, false, fmt.Sprint(i))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	// None is durable yet, and still more than one is under way.
	eventually(t, "several messages started before any is durable", func() bool { return len(o.order()) >= 10 })
	close(o.release)
	eventually(t, "every message", func() bool { return len(o.order()) >= n })
	got := o.order()
	for i := range n {
		if got[i] != fmt.Sprint(i) {
			t.Fatalf("message %d started as the %dth: %v", i, slices.Index(got, fmt.Sprint(i)), got[:min(len(got), 20)])
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
