package gateway

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/coldchain/coldchain/anchor/evm"
	"github.com/coldchain/coldchain/config"
)

// listener is one address the gateway binds, named by its config key.
type listener struct{ key, addr string }

// listeners returns the addresses this configuration binds itself: the
// embedded servers' and the HTTP API's. External peers are not listed.
func listeners(cfg config.Config) []listener {
	var ls []listener
	if cfg.NATS.Embedded() {
		ls = append(ls, listener{"nats.listen", cfg.NATS.Listen})
	}
	if cfg.MQTT.Embedded() {
		if cfg.MQTT.Broker.Listen != "" {
			ls = append(ls, listener{"mqtt.listen", cfg.MQTT.Broker.Listen})
		}
		if cfg.MQTT.Broker.TLSListen != "" {
			ls = append(ls, listener{"mqtt.tls_listen", cfg.MQTT.Broker.TLSListen})
		}
	}
	ls = append(ls, listener{"http.listen", cfg.HTTP.Listen})
	if cfg.Chain.Kind == evm.KindEmbedded && cfg.Chain.Listen != "" {
		ls = append(ls, listener{"chain.listen", cfg.Chain.Listen})
	}
	return ls
}

// checkListeners binds and releases every address the gateway will listen
// on, so a port already in use fails the start at once, with the key to
// change, instead of after the embedded servers have timed out. Port 0
// (pick a free one) cannot collide and is skipped.
func checkListeners(cfg config.Config) error {
	for _, l := range listeners(cfg) {
		if _, port, err := net.SplitHostPort(l.addr); err != nil || port == "0" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return listenError(l, err)
		}
		if err := ln.Close(); err != nil {
			return fmt.Errorf("%s: release %s: %w", l.key, l.addr, err)
		}
	}
	return nil
}

func listenError(l listener, err error) error {
	env := "COLDCHAIN_" + strings.ToUpper(strings.ReplaceAll(l.key, ".", "_"))
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s: %s is already in use (another coldchain or a %s server running?): stop it, or set %s or %s to a free address",
			l.key, l.addr, strings.SplitN(l.key, ".", 2)[0], l.key, env)
	}
	return fmt.Errorf("%s: cannot listen on %s: %w (set %s or %s)", l.key, l.addr, err, l.key, env)
}
