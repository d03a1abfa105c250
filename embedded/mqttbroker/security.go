package mqttbroker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/metrics"
)

// Authenticator checks a client's username and password (auth.Directory
// does, against the registry in JetStream).
type Authenticator interface {
	Authenticate(ctx context.Context, username string, password []byte) (auth.Principal, error)
	// Identify returns the registered identity a username names, for a
	// client whose certificate (DER) already proved it.
	Identify(ctx context.Context, username string, cert []byte) (auth.Principal, error)
	// AuthenticateToken checks an API token, which a watcher gives as the
	// password of username auth.TokenUsername.
	AuthenticateToken(ctx context.Context, token string) (auth.Principal, error)
}

// Security is who may connect to the broker and what each may do. A nil
// *Security is a broker that lets everyone do everything: the plain broker
// tests and benchmarks measure. The gateway always passes one.
type Security struct {
	// Users checks credentials; nil refuses every client that gives a
	// username.
	Users Authenticator
	// Granted, when set, binds devices and sites to the shipments granted
	// to their org (auth.CanPublishGranted), and API tokens watching
	// alerts to theirs (auth.CanSubscribeGranted); nil leaves devices and
	// sites unbound and lets only admin tokens watch.
	Granted func(shipment, org string) bool
	// Denied counts refusals (auth.DeniedCounter); nil counts nothing.
	Denied *metrics.CounterVec
}

// guard is the broker's authentication and ACL hook. It remembers the
// principal of every connected client and asks package auth's rules.
//
// Publishes on a broker with an ingester are authorized by the ingest hook
// instead (guard.publish), in the connection's queue, so a refused QoS 1
// publish is answered in its turn like every other [MQTT-4.6.0-2].
type guard struct {
	mqtt.HookBase
	users     Authenticator
	anonymous bool
	// ordered is set when the ingest hook authorizes publishes itself.
	ordered    bool
	principals sync.Map // *mqtt.Client → auth.Principal
	granted    func(shipment, org string) bool
	denied     *metrics.CounterVec
	sample     *auth.Sampler
	// perUser throttles failed logins per address and username, so a
	// misconfigured device does not lock out the others behind the same
	// NAT; perAddr bounds an address rotating usernames.
	perUser, perAddr *auth.Throttle
	// rate limits each device's and site's publishes (mqtt.device_rate).
	rate *auth.Limiter
	log  *zap.Logger
}

func newGuard(sec *Security, cfg Config, ordered bool, log *zap.Logger) *guard {
	return &guard{users: sec.Users, anonymous: cfg.AllowAnonymous, ordered: ordered, denied: sec.Denied, granted: sec.Granted,
		sample: auth.NewSampler(10 * time.Second), perUser: auth.NewThrottle(10), perAddr: auth.NewThrottle(300),
		rate: auth.NewLimiter(cfg.DeviceRate, cfg.DeviceBurst), log: log}
}

func (g *guard) ID() string { return "coldchain-auth" }

func (g *guard) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnDisconnect
}

// authTimeout bounds a registry lookup during CONNECT.
const authTimeout = 5 * time.Second

// OnConnectAuthenticate admits a client with a registered username and
// its password, or with neither when anonymous access is on.
func (g *guard) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, pass := string(pk.Connect.Username), pk.Connect.Password
	now := time.Now()
	for _, th := range []struct {
		t   *auth.Throttle
		key string
	}{{g.perUser, userKey(cl, user)}, {g.perAddr, source(cl)}} {
		if blocked, wait := th.t.Blocked(th.key, now); blocked {
			g.deny(cl, &auth.Denial{Reason: auth.ReasonThrottled,
				Detail: fmt.Sprintf("%d failed logins from %s within %v: refused without checking for %v", th.t.Max, th.key, th.t.Window, wait.Round(time.Second))})
			return false
		}
	}
	if cn, der, ok := certName(cl); ok {
		return g.byCertificate(cl, cn, der, user)
	}
	if user == "" && len(pass) == 0 {
		if !g.anonymous {
			g.deny(cl, &auth.Denial{Reason: auth.ReasonAnonymous,
				Detail: "anonymous clients are not allowed: connect with a device's username and password (coldchain devices add), or set mqtt.allow_anonymous: true for a demo"})
			return false
		}
		g.principals.Store(cl, auth.Principal{Kind: auth.KindAnonymous})
		return true
	}
	if user == auth.TokenUsername {
		// A shipper's or customs broker's API token, to watch alerts.
		return g.admit(cl, "an API token", user, func(ctx context.Context) (auth.Principal, error) {
			return g.users.AuthenticateToken(ctx, string(pass))
		})
	}
	return g.admit(cl, "username "+user, user, func(ctx context.Context) (auth.Principal, error) {
		return g.users.Authenticate(ctx, user, pass)
	})
}

// admit asks the registry who a client is (who names the client in the
// log) and remembers the answer; a client the registry does not know, or
// cannot answer for, is refused. mochi's CONNACK then says bad
// credentials either way: MQTT has no better code there.
func (g *guard) admit(cl *mqtt.Client, who, user string, ask func(context.Context) (auth.Principal, error)) bool {
	if g.users == nil {
		g.deny(cl, &auth.Denial{Reason: auth.ReasonBadCredentials, Detail: who + ": no identity registry is configured"})
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	p, err := ask(ctx)
	if err != nil {
		reason := auth.ReasonBadCredentials
		switch {
		case errors.Is(err, auth.ErrExpired):
			reason = auth.ReasonExpired // the secret was right: nobody is guessing
		case !errors.Is(err, auth.ErrUnknown) && !errors.Is(err, auth.ErrWrongPassword) && !errors.Is(err, auth.ErrMalformedToken):
			reason = auth.ReasonRegistryUnavailable // not the client's fault; logged
		default:
			now := time.Now()
			g.perUser.Fail(userKey(cl, user), now)
			g.perAddr.Fail(source(cl), now)
		}
		g.deny(cl, &auth.Denial{Reason: reason, Detail: who + ": " + err.Error()})
		return false
	}
	g.principals.Store(cl, p)
	g.log.Debug("client authenticated", zap.String("client", cl.ID), zap.Stringer("principal", p), zap.String("by", who))
	return true
}

// source is what the throttle counts a client's failures under: its IP
// address.
func source(cl *mqtt.Client) string {
	if host, _, err := net.SplitHostPort(cl.Net.Remote); err == nil {
		return host
	}
	return cl.Net.Remote
}

// userKey is what perUser counts failures under.
func userKey(cl *mqtt.Client, user string) string { return source(cl) + " as " + user }

// certName returns the common name and DER bytes of the client
// certificate cl presented on a mutual-TLS listener (which verified it
// against mqtt.tls_client_ca).
func certName(cl *mqtt.Client) (string, []byte, bool) {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return "", nil, false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return "", nil, false
	}
	leaf := st.PeerCertificates[0]
	return leaf.Subject.CommonName, leaf.Raw, true
}

// byCertificate admits a client whose verified certificate names a
// registered identity; a username, if given, must be the same one.
func (g *guard) byCertificate(cl *mqtt.Client, cn string, der []byte, user string) bool {
	if user != "" && user != cn {
		g.deny(cl, &auth.Denial{Reason: auth.ReasonBadCredentials, Detail: "certificate of " + cn + " with username " + user + ": they must name the same identity"})
		return false
	}
	return g.admit(cl, "certificate of "+cn, cn, func(ctx context.Context) (auth.Principal, error) {
		return g.users.Identify(ctx, cn, der)
	})
}

// principal is who cl is; ok is false for a client the guard did not
// admit (mochi only asks about admitted ones).
func (g *guard) principal(cl *mqtt.Client) (auth.Principal, bool) {
	if cl.Net.Inline {
		return auth.Principal{Kind: auth.KindGateway}, true
	}
	v, ok := g.principals.Load(cl)
	if !ok {
		return auth.Principal{}, false
	}
	return v.(auth.Principal), true
}

// OnACLCheck answers mochi for subscriptions, deliveries and, on a broker
// without an ingester, publishes.
func (g *guard) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write && g.ordered {
		return true // guard.publish decides, in the connection's queue
	}
	p, ok := g.principal(cl)
	if !ok {
		return false
	}
	var d *auth.Denial
	if write {
		d = g.canPublish(p, topic)
	} else {
		d = auth.CanSubscribeGranted(p, topic, g.granted)
	}
	if d != nil {
		g.deny(cl, d)
		return false
	}
	return true
}

// publish says whether cl may publish on topic, and who it is, counting
// and logging a refusal.
func (g *guard) publish(cl *mqtt.Client, topic string) (auth.Principal, bool) {
	p, ok := g.principal(cl)
	if !ok {
		return p, false
	}
	if d := g.canPublish(p, topic); d != nil {
		g.deny(cl, d)
		return p, false
	}
	return p, true
}

// limit takes one message of p's rate limit, returning the denial when p
// is over it (counted and logged by the acker, once, as it disconnects). Devices and sites are limited by their
// id, over all their connections; anonymous clients and the gateway are
// not limited.
func (g *guard) limit(p auth.Principal) *auth.Denial {
	if p.Kind != auth.KindDevice && p.Kind != auth.KindSite {
		return nil
	}
	ok, wait := g.rate.Take(p.ID, time.Now())
	if ok {
		return nil
	}
	return auth.RateLimited(p.String(), g.rate, "messages", wait)
}

func (g *guard) canPublish(p auth.Principal, topic string) *auth.Denial {
	if g.granted == nil {
		return auth.CanPublish(p, topic)
	}
	return auth.CanPublishGranted(p, topic, g.granted)
}

func (g *guard) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { g.principals.Delete(cl) }

// deny counts a refusal and logs it at a bounded rate, never with a
// password.
func (g *guard) deny(cl *mqtt.Client, d *auth.Denial) {
	if g.denied != nil {
		g.denied.With("mqtt", d.Reason).Inc()
	}
	if ok, held := g.sample.Allow(d.Reason, time.Now()); ok {
		g.log.Warn("mqtt request refused", zap.String("reason", d.Reason), zap.String("detail", d.Detail),
			zap.String("client", cl.ID), zap.String("remote", cl.Net.Remote), zap.Int("similar_not_logged", held))
	}
}

// Evict closes every session that authenticated as p, which the registry
// no longer holds (a device or site removed, a token revoked): a login
// only proves who a client was when it connected. MQTT 5 clients get
// DISCONNECT 0x87 with the reason. It returns how many sessions closed.
func (b *Broker) Evict(p auth.Principal) int {
	g := b.hook.guard
	if g == nil {
		return 0
	}
	var victims []*mqtt.Client
	g.principals.Range(func(k, v any) bool {
		if q := v.(auth.Principal); q.Kind == p.Kind && q.ID == p.ID {
			victims = append(victims, k.(*mqtt.Client))
		}
		return true
	})
	for _, cl := range victims {
		g.principals.Delete(cl) // nothing more is authorized for it, even before it is gone
		_ = b.srv.DisconnectClient(cl, packets.Code{Code: packets.ErrNotAuthorized.Code, Reason: p.String() + " was removed from the registry"})
		g.log.Info("mqtt session closed: its credentials were removed", zap.String("client", cl.ID), zap.Stringer("principal", p))
	}
	return len(victims)
}
