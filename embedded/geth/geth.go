// Package geth runs an in-process go-ethereum dev chain: the node, eth and
// catalyst packages that `geth --dev` uses, with a persistent data directory,
// blocks sealed on demand, and JSON-RPC over HTTP so any Ethereum tool can
// check an anchor.
//
// Durability. go-ethereum keeps recent state in memory and writes pebble
// without fsync, so a kill -9 would roll the chain back to the last state
// flushed to disk, and the anchor block with it. The node therefore runs as
// an archive node on the hash state scheme (every block's state is committed
// to the database when the block is written), without the snapshot layer, and
// syncs the write-ahead log after every block it seals; [Node.Sync] lets a
// caller force that before it reports a block as included.
package geth

import (
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/rawdb"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/eth/filters"
	"github.com/ethereum/go-ethereum/ethdb"
	"github.com/ethereum/go-ethereum/event"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/internal/atomicfile"
)

// ChainID is the chain id of the embedded dev chain (the one `geth --dev`
// uses).
const ChainID = 1337

// GasLimit is the block gas limit of the embedded chain (mainnet's, 2026).
const GasLimit = 60_000_000

// keyFile holds the dev account's private key (hex), created once.
const keyFile = "dev.key"

// ErrClosed is returned by Seal and Sync after Close.
var ErrClosed = errors.New("embedded chain closed")

// Config locates and exposes the embedded chain.
type Config struct {
	// DataDir is where the chain database and the dev key live, normally
	// <gateway data dir>/chain. Required.
	DataDir string
	// Listen is the host:port of the JSON-RPC HTTP endpoint (eth, net and
	// web3 namespaces). Port 0 picks a free port. Empty disables HTTP; the
	// chain is then reachable in-process only ([Node.Attach]).
	Listen string
}

// Node is a running embedded dev chain.
type Node struct {
	log    *zap.Logger
	stack  *node.Node
	eth    *eth.Ethereum
	beacon *catalyst.SimulatedBeacon
	key    *ecdsa.PrivateKey
	db     ethdb.KeyValueSyncer

	seal chan chan error // Seal requests, served by loop
	quit chan struct{}
	wg   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// ChainConfig returns the embedded chain's rules: every fork that mainnet has
// activated (through Osaka), at genesis. go-ethereum's dev config also
// enables forks that mainnet has not scheduled (Bogota, with much higher
// storage gas, and UBT); they are switched off so gas figures measured here
// hold on mainnet.
func ChainConfig() *params.ChainConfig {
	c := *params.AllDevChainProtocolChanges
	c.ChainID = big.NewInt(ChainID)
	c.BogotaTime = nil
	c.UBTTime = nil
	return &c
}

// Genesis returns the dev genesis with mainnet rules and faucet funded.
func Genesis(faucet common.Address) *core.Genesis {
	g := core.DeveloperGenesisBlock(GasLimit, &faucet)
	g.Config = ChainConfig()
	return g
}

// Open starts the chain in cfg.DataDir, creating it (and the dev key) on
// first use. The caller must Close it.
func Open(cfg Config, log *zap.Logger) (*Node, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded chain: data dir must not be empty")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded chain: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.DataDir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("embedded chain: %w", err)
	}
	dev := crypto.PubkeyToAddress(key.PublicKey)

	nodeConf := node.DefaultConfig
	nodeConf.Name = "coldchain"
	nodeConf.DataDir = cfg.DataDir
	nodeConf.IPCPath = ""
	nodeConf.P2P = p2p.Config{NoDiscovery: true, MaxPeers: 0, ListenAddr: ""}
	nodeConf.HTTPHost, nodeConf.HTTPPort = "", 0
	nodeConf.WSHost = ""
	nodeConf.AuthPort = 0
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded chain: listen %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded chain: listen %q: bad port", cfg.Listen)
		}
		nodeConf.HTTPHost, nodeConf.HTTPPort = host, p
		nodeConf.HTTPModules = []string{"eth", "net", "web3"}
		nodeConf.HTTPVirtualHosts = []string{"localhost"}
	}
	stack, err := node.New(&nodeConf)
	if err != nil {
		return nil, fmt.Errorf("embedded chain: %w", err)
	}

	ethConf := ethconfig.Defaults
	ethConf.NetworkId = ChainID
	ethConf.SyncMode = ethconfig.FullSync
	ethConf.Genesis = Genesis(dev)
	// Archive on the hash scheme: each block's state reaches the database
	// with the block (see the package comment). No snapshot: it is rebuilt
	// after an unclean stop, and this chain is tiny.
	ethConf.NoPruning = true
	ethConf.StateScheme = rawdb.HashScheme
	ethConf.SnapshotCache = 0
	ethConf.DatabaseCache = 16
	ethConf.TrieCleanCache = 16
	ethConf.TrieDirtyCache = 0
	// Logs are searched block by block; anchor lookups name one block.
	ethConf.LogNoHistory = true
	ethConf.TxPool.NoLocals = true
	ethConf.TxPool.Journal = ""
	ethConf.Miner.GasPrice = big.NewInt(1) // as geth --dev: any tip is mined
	ethConf.Miner.PendingFeeRecipient = dev

	backend, err := eth.New(stack, &ethConf)
	if err != nil {
		stack.Close()
		return nil, fmt.Errorf("embedded chain: %w", err)
	}
	fs := filters.NewFilterSystem(backend.APIBackend, filters.Config{})
	stack.RegisterAPIs([]rpc.API{{Namespace: "eth", Service: filters.NewFilterAPI(fs)}})
	if err := stack.Start(); err != nil {
		stack.Close()
		return nil, fmt.Errorf("embedded chain: start: %w", err)
	}
	// Period 0: the beacon seals nothing by itself; loop seals on demand.
	beacon, err := catalyst.NewSimulatedBeacon(0, dev, backend)
	if err != nil {
		stack.Close()
		return nil, fmt.Errorf("embedded chain: beacon: %w", err)
	}
	db, ok := backend.ChainDb().(ethdb.KeyValueSyncer)
	if !ok {
		stack.Close()
		return nil, errors.New("embedded chain: database cannot sync")
	}
	n := &Node{
		log:    log,
		stack:  stack,
		eth:    backend,
		beacon: beacon,
		key:    key,
		db:     db,
		seal:   make(chan chan error),
		quit:   make(chan struct{}),
	}
	// Subscribed before Start returns: a transaction sent right away (the
	// contract's deployment) must not slip in before the loop listens.
	txs := make(chan core.NewTxsEvent, 16) // the pool's feed must not block on us
	sub := backend.TxPool().SubscribeTransactions(txs, true)
	n.wg.Add(1)
	go n.loop(txs, sub)
	head := backend.BlockChain().CurrentBlock()
	log.Info("embedded chain started", zap.String("dir", cfg.DataDir), zap.String("rpc", n.URL()),
		zap.Uint64("chain_id", ChainID), zap.Uint64("head", head.Number.Uint64()),
		zap.String("dev_account", dev.Hex()))
	return n, nil
}

// loop is the only goroutine that seals blocks: one block as soon as
// transactions arrive (and more while some stay executable), or one block per
// Seal request. It syncs the database after every block. Once a second it
// also looks at the pool itself, so that an executable transaction it was
// not told about (the pool promotes asynchronously) waits no longer.
func (n *Node) loop(txs chan core.NewTxsEvent, sub event.Subscription) {
	defer n.wg.Done()
	defer sub.Unsubscribe()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.quit:
			return
		case <-tick.C:
			if executable, _ := n.eth.TxPool().Stats(); executable > 0 {
				if err := n.sealPending(); err != nil {
					n.log.Warn("embedded chain: seal", zap.Error(err))
				}
			}
		case err := <-sub.Err():
			if err != nil {
				n.log.Error("embedded chain: tx subscription", zap.Error(err))
			}
			return
		case <-txs:
			// Drain queued notifications: one pass seals them all.
			for len(txs) > 0 {
				<-txs
			}
			if err := n.sealPending(); err != nil {
				n.log.Warn("embedded chain: seal", zap.Error(err))
			}
		case done := <-n.seal:
			n.beacon.Commit()
			done <- n.db.SyncKeyValue()
		}
	}
}

// sealPending seals blocks until no executable transaction is left (at most
// a few: a transaction the miner refuses would otherwise spin).
func (n *Node) sealPending() error {
	for range 8 {
		n.beacon.Commit()
		if err := n.eth.TxPool().Sync(); err != nil {
			return err
		}
		if err := n.db.SyncKeyValue(); err != nil {
			return err
		}
		if executable, _ := n.eth.TxPool().Stats(); executable == 0 {
			return nil
		}
	}
	return nil
}

// Seal seals one block (empty if no transaction is pending) and returns once
// it is on disk. The dev chain has one sealer and cannot reorg; callers use
// Seal to reach a confirmation depth without mining blocks all day.
func (n *Node) Seal() error {
	done := make(chan error, 1) // loop never blocks on the reply
	select {
	case n.seal <- done:
	case <-n.quit:
		return ErrClosed
	}
	select {
	case err := <-done:
		return err
	case <-n.quit:
		return ErrClosed
	}
}

// Sync flushes the chain database's write-ahead log to disk.
func (n *Node) Sync() error {
	select {
	case <-n.quit:
		return ErrClosed
	default:
	}
	return n.db.SyncKeyValue()
}

// URL is the JSON-RPC HTTP endpoint, e.g. http://127.0.0.1:8545, or "" when
// HTTP is off.
func (n *Node) URL() string { return n.stack.HTTPEndpoint() }

// Attach returns an in-process RPC client. The caller closes it.
func (n *Node) Attach() *rpc.Client { return n.stack.Attach() }

// Key returns the dev account's private key. The account is funded at
// genesis. Never log it.
func (n *Node) Key() *ecdsa.PrivateKey { return n.key }

// Close stops sealing and shuts the node down cleanly (go-ethereum writes
// its caches and journals).
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.quit)
		n.wg.Wait()
		err := n.beacon.Stop()
		n.closeErr = errors.Join(err, n.stack.Close())
	})
	return n.closeErr
}

// loadOrCreateKey reads the hex key at path, or creates it (mode 0600).
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.HexToECDSA(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("dev key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, []byte(hex.EncodeToString(crypto.FromECDSA(k))+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	return k, nil
}
