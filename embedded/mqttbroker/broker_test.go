package mqttbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/ingest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeIngester hands out tickets that the test finishes, in any order.
type fakeIngester struct {
	mu      sync.Mutex
	tickets []*fakeTicket
	// running is how many tickets are started and not finished; peak is
	// the most there were at once.
	running, peak int
}

func (f *fakeIngester) Start(_ context.Context, msg ingest.Message) (ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTicket{f: f, msg: msg, done: make(chan struct{})}
	f.tickets = append(f.tickets, t)
	f.running++
	f.peak = max(f.peak, f.running)
	return t, nil
}

// started returns the tickets handed out so far, in Start order.
func (f *fakeIngester) started() []*fakeTicket {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tickets)
}

// fakeTicket is done when the test finishes it; its Wait returns what the
// test said, or ctx's error first.
type fakeTicket struct {
	f    *fakeIngester
	msg  ingest.Message
	done chan struct{}
	err  error

	mu    sync.Mutex
	waits int
	last  error // what the last Wait returned
}

func (t *fakeTicket) finish(err error) {
	t.f.mu.Lock()
	t.f.running--
	t.f.mu.Unlock()
	t.err = err
	close(t.done)
}

func (t *fakeTicket) Wait(ctx context.Context) (ingest.Summary, error) {
	var err error
	select {
	case <-t.done:
		err = t.err
	case <-ctx.Done():
		err = fmt.Errorf("%w: %w", ingest.ErrStopping, ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.waits++
	t.last = err
	return ingest.Summary{Records: 1, Accepted: 1}, err
}

// waited returns how often Wait returned, and what it returned last.
func (t *fakeTicket) waited() (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waits, t.last
}

// wire records, per client, the ids of the PUBLISH packets the broker read
// and of the PUBACK and PUBREC packets it wrote, in order ("puback 3", or
// "puback 0x87 3" with a reason code that is an error, 0x80 or more).
type wire struct {
	mqtt.HookBase
	mu   sync.Mutex
	read map[string][]uint16
	sent map[string][]string
	// gone is the DISCONNECT the broker sent a client: code and reason.
	gone map[string]string
}

func (w *wire) ID() string { return "test-wire" }

func (w *wire) Provides(b byte) bool { return b == mqtt.OnPacketRead || b == mqtt.OnPacketSent }

func (w *wire) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish {
		w.mu.Lock()
		w.read[cl.ID] = append(w.read[cl.ID], pk.PacketID)
		w.mu.Unlock()
	}
	return pk, nil
}

func (w *wire) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	var kind string
	switch pk.FixedHeader.Type {
	case packets.Puback:
		kind = "puback"
	case packets.Pubrec:
		kind = "pubrec"
	case packets.Disconnect:
		w.mu.Lock()
		w.gone[cl.ID] = fmt.Sprintf("0x%02x %s", pk.ReasonCode, pk.Properties.ReasonString)
		w.mu.Unlock()
		return
	default:
		return
	}
	if pk.ReasonCode >= 0x80 {
		kind = fmt.Sprintf("%s 0x%02x", kind, pk.ReasonCode)
	}
	w.mu.Lock()
	w.sent[cl.ID] = append(w.sent[cl.ID], fmt.Sprintf("%s %d", kind, pk.PacketID))
	w.mu.Unlock()
}

// acks returns what the broker acknowledged to client id.
func (w *wire) acks(id string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sent[id])
}

// waitAcks waits until the broker has recorded n answers to client id
// (the hook hears of a packet only after the client may have it) and
// returns them.
func (w *wire) waitAcks(t *testing.T, id string, n int) []string {
	t.Helper()
	eventually(t, "answers recorded", func() bool { return len(w.acks(id)) >= n })
	return w.acks(id)
}

// disconnected waits for the DISCONNECT the broker sent client id and
// returns its reason code and string.
func (w *wire) disconnected(t *testing.T, id string) string {
	t.Helper()
	var got string
	eventually(t, "a DISCONNECT sent to "+id, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		got = w.gone[id]
		return got != ""
	})
	return got
}

// publishes returns the ids of the PUBLISH packets client id sent.
func (w *wire) publishes(id string) []uint16 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.read[id])
}

// startBroker starts a broker ingesting into a fake and recording the
// wire, closed at the end of the test.
func startBroker(t *testing.T) (*Broker, *fakeIngester, *wire) {
	t.Helper()
	return serve(t, Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20}, nil)
}

// serve starts a broker with cfg and sec ingesting into a fake and
// recording the wire, closed at the end of the test.
func serve(t *testing.T, cfg Config, sec *Security) (*Broker, *fakeIngester, *wire) {
	t.Helper()
	f := &fakeIngester{}
	b, err := start(cfg, f, sec, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	if err != nil {
		t.Fatal(err)
	}
	w := &wire{read: map[string][]uint16{}, sent: map[string][]string{}, gone: map[string]string{}}
	if err := b.srv.AddHook(w, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Nothing may be left waiting: finish what the test did not.
		for _, tk := range f.started() {
			select {
			case <-tk.done:
			default:
				tk.finish(nil)
			}
		}
		b.Close(5 * time.Second)
	})
	return b, f, w
}

// connect connects a paho client that does not reconnect; lost is closed
// when the broker drops it.
func connect(t *testing.T, b *Broker, id string) (c paho.Client, lost <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{})
	opts := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetWriteTimeout(5 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { close(ch) })
	c = paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(100)
		}
	})
	return c, ch
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// still checks that cond holds for a while, for what must not happen.
func still(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(150 * time.Millisecond)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatal(what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readingTopic(dev string) string { return "coldchain/v1/S1/" + dev + "/readings" }

func publish(c paho.Client, topic string, qos byte, payload string) paho.Token {
	return c.Publish(topic, qos, false, payload)
}

func done(tok paho.Token) bool {
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}

func pubacks(ids []uint16) []string {
	var out []string
	for _, id := range ids {
		out = append(out, fmt.Sprintf("puback %d", id))
	}
	return out
}

// TestPipelined publishes a window of QoS 1 messages from one connection
// and finishes their tickets last first: every message was started before
// any finished, nothing is acknowledged before its own ticket and every
// earlier one finished, and the PUBACKs go out in the order the PUBLISH
// packets came in [MQTT-4.6.0-2].
func TestPipelined(t *testing.T) {
	b, f, w := startBroker(t)
	c, _ := connect(t, b, "dev-1")
	const n = 8
	var toks []paho.Token
	for i := range n {
		toks = append(toks, publish(c, readingTopic("D1"), 1, fmt.Sprintf(`{"seq":%d}`, i+1)))
	}
	eventually(t, "all messages started", func() bool { return len(f.started()) == n })
	f.mu.Lock()
	peak := f.peak
	f.mu.Unlock()
	if peak != n {
		t.Fatalf("%d messages in flight at most, want %d", peak, n)
	}
	tickets := f.started()
	for i, tk := range tickets {
		if want := fmt.Sprintf(`{"seq":%d}`, i+1); string(tk.msg.Payload) != want || tk.msg.Topic != readingTopic("D1") || tk.msg.Transport != "mqtt" {
			t.Fatalf("ticket %d is %s %q, want %q: Start out of arrival order", i, tk.msg.Topic, tk.msg.Payload, want)
		}
	}

	// The later ones finish first: nothing may be acknowledged.
	for i := n - 1; i >= 1; i-- {
		tickets[i].finish(nil)
	}
	still(t, "PUBACK before the first message was durable", func() bool {
		return len(w.acks("dev-1")) == 0 && !slices.ContainsFunc(toks, done)
	})
	tickets[0].finish(nil)
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("message %d not acknowledged: %v", i, tok.Error())
		}
	}
	if got, want := w.waitAcks(t, "dev-1", n), pubacks(w.publishes("dev-1")); !slices.Equal(got, want) {
		t.Fatalf("acknowledged %v, want %v", got, want)
	}
	for i, tk := range tickets {
		if n, err := tk.waited(); n != 1 || err != nil {
			t.Fatalf("ticket %d waited %d times, last with %v", i, n, err)
		}
	}
}

// TestNoAckBeforeDurable checks each message alone: its PUBACK waits for
// its ticket.
func TestNoAckBeforeDurable(t *testing.T) {
	b, f, w := startBroker(t)
	c, _ := connect(t, b, "dev-1")
	for i := range 3 {
		tok := publish(c, readingTopic("D1"), 1, fmt.Sprintf(`{"seq":%d}`, i+1))
		eventually(t, "message started", func() bool { return len(f.started()) == i+1 })
		still(t, "PUBACK before the ticket finished", func() bool { return !done(tok) && len(w.acks("dev-1")) == i })
		f.started()[i].finish(nil)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("message %d not acknowledged: %v", i, tok.Error())
		}
	}
}

// TestFailedTicketDisconnects fails the second of four tickets: the first
// is acknowledged, the client is disconnected, nothing from the second on
// is acknowledged, and every ticket is waited for (so ingest frees its
// in-flight slots) and the connection's acker ends.
func TestFailedTicketDisconnects(t *testing.T) {
	b, f, w := startBroker(t)
	c, lost := connect(t, b, "dev-1")
	var toks []paho.Token
	for i := range 4 {
		toks = append(toks, publish(c, readingTopic("D1"), 1, fmt.Sprintf(`{"seq":%d}`, i+1)))
	}
	eventually(t, "all messages started", func() bool { return len(f.started()) == 4 })
	tickets := f.started()
	tickets[3].finish(nil)
	tickets[2].finish(nil)
	tickets[1].finish(errors.New("journal unavailable"))
	still(t, "PUBACK before the first message was durable", func() bool { return len(w.acks("dev-1")) == 0 })
	tickets[0].finish(nil)
	if !toks[0].WaitTimeout(10*time.Second) || toks[0].Error() != nil {
		t.Fatalf("first message not acknowledged: %v", toks[0].Error())
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("client not disconnected")
	}
	eventually(t, "every ticket waited for", func() bool {
		for _, tk := range tickets {
			if n, _ := tk.waited(); n != 1 {
				return false
			}
		}
		return true
	})
	still(t, "a message after the failed one acknowledged", func() bool { return len(w.acks("dev-1")) <= 1 })
	if got, want := w.waitAcks(t, "dev-1", 1), pubacks(w.publishes("dev-1")[:1]); !slices.Equal(got, want) {
		t.Fatalf("acknowledged %v, want only %v", got, want)
	}
	eventually(t, "the acker to end", func() bool { return ackers(b) == 0 })
}

// TestPublishesStartedAfterFailureAbandoned checks that what a connection
// sends after a failed message is neither acknowledged nor left waiting:
// its tickets still finish in the fake only when told, so the acker must
// give up on them.
func TestPublishesStartedAfterFailureAbandoned(t *testing.T) {
	b, f, w := startBroker(t)
	c, lost := connect(t, b, "dev-1")
	toks := []paho.Token{publish(c, readingTopic("D1"), 1, `{"seq":1}`), publish(c, readingTopic("D1"), 1, `{"seq":2}`)}
	eventually(t, "messages started", func() bool { return len(f.started()) == 2 })
	f.started()[0].finish(errors.New("journal unavailable"))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("client not disconnected")
	}
	// The second ticket never finishes: the acker waits it out with an
	// ended context and ends.
	eventually(t, "the acker to end", func() bool { return ackers(b) == 0 })
	eventually(t, "the second ticket waited for", func() bool { n, _ := f.started()[1].waited(); return n == 1 })
	if n, err := f.started()[1].waited(); n != 1 || !errors.Is(err, ingest.ErrStopping) {
		t.Fatalf("second ticket waited %d times, last with %v", n, err)
	}
	still(t, "a message acknowledged", func() bool { return len(w.acks("dev-1")) == 0 })
	for i, tok := range toks {
		if done(tok) && tok.Error() == nil {
			t.Fatalf("message %d acknowledged", i)
		}
	}
}

// TestSubscribersGetDurableMessages checks that a subscriber to an ingest
// topic gets a message only once it is durable, with its payload.
func TestSubscribersGetDurableMessages(t *testing.T) {
	b, f, _ := startBroker(t)
	sub, _ := connect(t, b, "watcher")
	got := make(chan string, 10)
	if tok := sub.Subscribe("coldchain/v1/+/+/readings", 1, func(_ paho.Client, m paho.Message) {
		got <- m.Topic() + " " + string(m.Payload())
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub, _ := connect(t, b, "dev-1")
	tok := publish(pub, readingTopic("D1"), 1, `{"seq":1}`)
	publish(pub, readingTopic("D1"), 0, `{"seq":2}`)
	eventually(t, "messages started", func() bool { return len(f.started()) == 2 })
	select {
	case m := <-got:
		t.Fatalf("subscriber got %s before it was durable", m)
	case <-time.After(100 * time.Millisecond):
	}
	f.started()[1].finish(nil)
	f.started()[0].finish(nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("not acknowledged: %v", tok.Error())
	}
	for i, want := range []string{readingTopic("D1") + ` {"seq":1}`, readingTopic("D1") + ` {"seq":2}`} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("message %d: got %s, want %s", i, m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber did not get %s", want)
		}
	}
}

// TestOtherPublishesWaitTheirTurn checks that a QoS 2 publish on an ingest
// topic and a QoS 1 publish on another topic, sent after a pending QoS 1
// message, are answered only after it: the acknowledgements keep the
// arrival order.
func TestOtherPublishesWaitTheirTurn(t *testing.T) {
	b, f, w := startBroker(t)
	c, _ := connect(t, b, "dev-1")
	first := publish(c, readingTopic("D1"), 1, `{"seq":1}`)
	eventually(t, "first message started", func() bool { return len(f.started()) == 1 })
	qos2 := publish(c, readingTopic("D1"), 2, `{"seq":2}`)
	eventually(t, "QoS 2 message started", func() bool { return len(f.started()) == 2 })
	other := publish(c, "site/7/status", 1, `up`)
	f.started()[1].finish(nil)
	still(t, "answered before the first message was durable", func() bool {
		return len(w.acks("dev-1")) == 0 && !done(first) && !done(qos2) && !done(other)
	})
	f.started()[0].finish(nil)
	for i, tok := range []paho.Token{first, qos2, other} {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d not acknowledged: %v", i, tok.Error())
		}
	}
	ids := w.publishes("dev-1")
	want := []string{fmt.Sprintf("puback %d", ids[0]), fmt.Sprintf("pubrec %d", ids[1]), fmt.Sprintf("puback %d", ids[2])}
	if got := w.waitAcks(t, "dev-1", len(want)); !slices.Equal(got, want) {
		t.Fatalf("answered %v, want %v", got, want)
	}
}

// TestCloseAbandonsAfterDrain checks that Close waits up to drain for
// tickets that never finish, then abandons them: the client gets no
// answer and every goroutine ends (TestMain checks for leaks). The QoS 2
// publish holds the client's read loop, which mochi's Close waits for.
func TestCloseAbandonsAfterDrain(t *testing.T) {
	f := &fakeIngester{}
	b, err := start(Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20}, f, nil, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := connect(t, b, "dev-1")
	tok := publish(c, readingTopic("D1"), 1, `{"seq":1}`)
	publish(c, readingTopic("D1"), 2, `{"seq":2}`)
	eventually(t, "messages started", func() bool { return len(f.started()) == 2 })
	start := time.Now()
	b.Close(200 * time.Millisecond)
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("Close took %v with a drain of 200ms", d)
	}
	if done(tok) && tok.Error() == nil {
		t.Fatal("abandoned message acknowledged")
	}
	for i, tk := range f.started() {
		if n, err := tk.waited(); n != 1 || !errors.Is(err, ingest.ErrStopping) {
			t.Fatalf("ticket %d waited %d times, last with %v", i, n, err)
		}
	}
}

// TestCloseDrains checks that Close lets a ticket that finishes within
// the drain be acknowledged.
func TestCloseDrains(t *testing.T) {
	f := &fakeIngester{}
	b, err := start(Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20}, f, nil, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := connect(t, b, "dev-1")
	publish(c, readingTopic("D1"), 1, `{"seq":1}`)
	eventually(t, "message started", func() bool { return len(f.started()) == 1 })
	time.AfterFunc(50*time.Millisecond, func() { f.started()[0].finish(nil) })
	b.Close(10 * time.Second)
	if n, err := f.started()[0].waited(); n != 1 || err != nil {
		t.Fatalf("ticket waited %d times, last with %v", n, err)
	}
}

// ackers counts the connections with an acker.
func ackers(b *Broker) int {
	n := 0
	b.hook.conns.Range(func(any, any) bool { n++; return true })
	return n
}
