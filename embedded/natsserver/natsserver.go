// Package natsserver runs nats-server with JetStream inside the gateway
// process, the default when no external NATS URL is configured.
package natsserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Config says where the embedded server listens and keeps its data.
type Config struct {
	// Listen is the client address, host:port; port 0 picks a free one.
	Listen string
	// StoreDir holds the JetStream file store.
	StoreDir string
	// MaxPayload is the largest message in bytes. A 10,000-reading burst
	// that is dead-lettered whole is kept in one message.
	MaxPayload int32
	// Token, when set, is required of every client, in-process or over
	// TCP: without it any local process could write to the streams the
	// gateway treats as the source of truth, the identity registry
	// included.
	Token string
	// Name is the server's name (default coldchain-embedded); the nodes
	// of a cluster need distinct names.
	Name string
	// Cluster, when set, makes the server a node of a JetStream cluster.
	Cluster *ClusterConfig
}

// ClusterConfig makes an embedded server one node of a JetStream cluster:
// the unit tests of cluster mode run three in one process, with routes on
// loopback. The production cluster is three nats-server processes
// (scripts/peers.sh start nats-cluster, docs/CLUSTER.md).
type ClusterConfig struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// Listen is this node's route address, host:port.
	Listen string
	// Routes are the route URLs of the other nodes (nats-route://host:port).
	Routes []string
}

// Server is a running embedded nats-server.
type Server struct {
	ns    *server.Server
	token string
	cfg   Config // for Restart
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config, log *zap.Logger) (*Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := cfg.Name
	if name == "" {
		name = "coldchain-embedded"
	}
	opts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		MaxPayload: cfg.MaxPayload,
		// The gateway handles signals itself.
		NoSigs:        true,
		Authorization: cfg.Token,
	}
	if c := cfg.Cluster; c != nil {
		if err := clusterOptions(opts, c); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	ns.SetLoggerV2(zapLogger{log.Sugar()}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats server did not become ready within 30s: is " + cfg.Listen + " in use?")
	}
	return &Server{ns: ns, token: cfg.Token, cfg: cfg}, nil
}

func clusterOptions(opts *server.Options, c *ClusterConfig) error {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("nats cluster listen address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("nats cluster listen port %q: %w", portStr, err)
	}
	opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("nats route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// ClientURL returns the URL other processes connect to, without the
// token: it is what the gateway logs.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// AuthURL is ClientURL with the token in it (nats://TOKEN@host:port), for
// the gateway's own tools and tests. Never log it.
func (s *Server) AuthURL() string {
	if s.token == "" {
		return s.ns.ClientURL()
	}
	return strings.Replace(s.ns.ClientURL(), "://", "://"+url.User(s.token).String()+"@", 1)
}

// Connect opens an in-process connection (no TCP) with the given options.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.ns)}, opts...)
	if s.token != "" {
		opts = append(opts, nats.Token(s.token))
	}
	return nats.Connect(s.ns.ClientURL(), opts...)
}

// Shutdown stops the server and waits until it has flushed and exited.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// zapLogger adapts zap to nats-server's logger. Notices are logged at
// debug level: they are chatty and the gateway logs what matters itself.
type zapLogger struct{ s *zap.SugaredLogger }

func (l zapLogger) Noticef(format string, v ...any) { l.s.Debugf(format, v...) }
func (l zapLogger) Warnf(format string, v ...any)   { l.s.Warnf(format, v...) }
func (l zapLogger) Fatalf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l zapLogger) Errorf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l zapLogger) Debugf(format string, v ...any)  { l.s.Debugf(format, v...) }
func (l zapLogger) Tracef(format string, v ...any)  {}

// TokenFile returns the token kept in path, making a random one (32
// bytes, base64url) and writing it there, readable by its owner only,
// when the file does not exist yet. The gateway keeps its embedded
// server's token this way, so the registry commands on the same machine
// (coldchain devices, tokens) read it and nobody else can connect.
func TokenFile(path string) (string, error) {
	if tok, err := ReadToken(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return tok, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process made it first
			return ReadToken(path)
		}
		return "", fmt.Errorf("nats token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("nats token %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("nats token %s: %w", path, err)
	}
	return tok, nil
}

// ReadToken reads a token TokenFile wrote; the error wraps os.ErrNotExist
// when there is none.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("nats token: %s is empty: delete it and restart the gateway to make a new one", path)
	}
	return tok, nil
}

// StartCluster starts n nodes of one JetStream cluster in this process,
// on loopback ports, their stores under dir/<name>, and waits until the
// cluster has elected its JetStream meta leader. It is for tests of
// cluster mode; Restart brings a node back after Shutdown.
func StartCluster(n int, dir, token string, log *zap.Logger) ([]*Server, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	cfgs := make([]Config, n)
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+j]))
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		cfgs[i] = Config{Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), StoreDir: filepath.Join(dir, name), Token: token, Name: name,
			MaxPayload: 8 << 20, Cluster: &ClusterConfig{Name: "coldchain-test", Listen: fmt.Sprintf("127.0.0.1:%d", ports[n+i]), Routes: routes}}
	}
	out := make([]*Server, n)
	for i := range n {
		s, err := Start(cfgs[i], log.Named(cfgs[i].Name))
		if err != nil {
			for _, o := range out[:i] {
				o.Shutdown()
			}
			return nil, err
		}
		out[i] = s
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range out {
			if s.ns.JetStreamIsLeader() {
				return out, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, o := range out {
		o.Shutdown()
	}
	return nil, errors.New("the test cluster elected no JetStream meta leader within 30s")
}

// Restart starts a node of StartCluster again, with its store, after
// Shutdown.
func (s *Server) Restart(log *zap.Logger) error {
	n, err := Start(s.cfg, log)
	if err != nil {
		return err
	}
	s.ns = n.ns
	return nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, n)
	for i := range out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out[i] = l.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}
