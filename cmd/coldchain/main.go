// Command coldchain is the cold-chain telematics gateway.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/gateway"
)

// version is stamped by `make build` (-ldflags "-X main.version=...").
var version = "dev"

const usage = `coldchain — cold-chain telematics ingestion gateway

Usage:
  coldchain serve [--config FILE]   run the gateway
  coldchain demo                    the gateway plus a small simulated fleet: an alert fires, a proof verifies
  coldchain simulate [flags]        simulate a fleet of reefers, or load (--help)
  coldchain proof SHIPMENT --api URL -o bundle.json
                                    fetch a shipment's proof bundle
  coldchain verify bundle.json [--rpc URL]
                                    check a proof bundle, offline or also on chain
  coldchain report SHIPMENT --api URL -o report.pdf
                                    a traceability report (PDF) made from the proof bundle
  coldchain epcis SHIPMENT --api URL -o shipment.jsonld
                                    fetch a shipment as a GS1 EPCIS 2.0 document
  coldchain devices add|list|remove ID
                                    the devices and sites that may connect (--help)
  coldchain tokens create|list|revoke
                                    API tokens with roles and orgs (--help)
  coldchain shipments grant|revoke SHIPMENT --org ORG
                                    which org's tokens see a shipment
  coldchain certs dev [--client ID]  a local CA and certificates to try TLS (--help)
  coldchain cluster epoch|forget-epochs
                                    cluster mode's record of the latest anchor epoch (--help)
  coldchain version                 print the version
  coldchain help [COMMAND]          explain a command
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commands are the subcommands that take --help.
var commands = map[string]bool{"serve": true, "demo": true, "simulate": true, "proof": true, "report": true, "epcis": true, "verify": true, "devices": true, "tokens": true, "shipments": true, "certs": true, "cluster": true}

// errUsage marks a usage error: exit status 2.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "demo":
		err = demoCmd(args[1:], stdout, stderr)
	case "simulate":
		err = simulateCmd(args[1:], stdout, stderr)
	case "proof":
		err = proofCmd(args[1:], stdout, stderr)
	case "report":
		err = reportCmd(args[1:], stdout, stderr)
	case "epcis":
		err = epcisCmd(args[1:], stdout, stderr)
	case "verify":
		err = verifyCmd(args[1:], stdout, stderr)
	case "devices":
		err = devicesCmd(args[1:], stdout, stderr)
	case "tokens":
		err = tokensCmd(args[1:], stdout, stderr)
	case "shipments":
		err = shipmentsCmd(args[1:], stdout, stderr)
	case "certs":
		err = certsCmd(args[1:], stdout, stderr)
	case "cluster":
		err = clusterCmd(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "coldchain %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	case "help", "-h", "--help":
		// help NAME prints what NAME --help prints, to stdout.
		if len(args) > 1 && args[1] != "help" && args[1] != "version" {
			if _, known := commands[args[1]]; !known {
				fmt.Fprintf(stderr, "coldchain: unknown command %q\n\n%s", args[1], usage)
				return 2
			}
			return run([]string{args[1], "--help"}, stdout, stdout)
		}
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "coldchain: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		// The usage was printed; say what was wrong with this call after it.
		if err != errUsage {
			fmt.Fprintf(stderr, "\ncoldchain: %v\n", err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "coldchain: %v\n", err)
		return 1
	}
}

const serveHelp = `Usage: coldchain serve [--config FILE]

Runs the gateway. With no configuration everything is embedded and on
loopback: an MQTT broker on 127.0.0.1:1883, NATS JetStream on
127.0.0.1:4222 (data under ./data), the HTTP API on 127.0.0.1:8080.

Devices publish readings to coldchain/v1/{shipment}/{device}/readings and
handovers to coldchain/v1/{shipment}/handovers (QoS 1); providers POST JSON
arrays to /v1/readings and /v1/handovers. Rejected input is listed at
GET /v1/deadletters. Health: /healthz, /readyz; metrics: /metrics.

Every configuration key (see configs/coldchain.yaml) can be set by an
environment variable COLDCHAIN_<KEY PATH>, e.g. COLDCHAIN_DATA_DIR,
COLDCHAIN_HTTP_LISTEN, COLDCHAIN_MQTT_URL (external broker; disables the
embedded one), COLDCHAIN_MQTT_USERNAME, COLDCHAIN_MQTT_PASSWORD,
COLDCHAIN_NATS_URL (external NATS; disables the embedded one).

SIGINT or SIGTERM drains in-flight messages (shutdown_timeout); a second
signal exits at once.

Flags:
`

func serve(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", "", "YAML configuration `file` (see configs/coldchain.yaml); defaults apply without one")
	fs.Usage = func() {
		fmt.Fprint(out, serveHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(out, "coldchain serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal aborts a slow shutdown.
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		log.Warn("second signal: exiting without draining")
		_ = log.Sync()
		os.Exit(1)
	}()

	g, err := gateway.New(cfg, log)
	if err != nil {
		return err
	}
	log.Info("coldchain starting", zap.String("version", version), zap.String("data_dir", cfg.DataDir))
	return g.Run(ctx)
}

func newLogger(cfg config.Log) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil // ingest samples its own high-rate logs
	// An operator's log says what went wrong and what to do; a goroutine
	// stack under every error (zap's production default) buries that.
	zc.DisableStacktrace = true
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.EncoderConfig.EncodeDuration = zapcore.StringDurationEncoder
	if cfg.Format == "console" {
		zc.Encoding = "console"
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	return zc.Build()
}
