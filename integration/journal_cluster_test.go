//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// TestJournalTwoWritersRealCluster appends the same readings through two
// journals at once, each connected to another node of the real three-node
// cluster, as two gateways do when a logger's resend reaches both through
// the shared subscription. Debian's nats-server 2.9.10 does not serialise
// concurrent publishes with the same Nats-Expected-Last-Subject-Sequence
// on a clustered stream (nats-server#4319): without the journal's
// position ids some readings were stored twice (TestClusterFleet's
// duplicates scenario found 18). Each reading must be stored once and
// called a duplicate once.
func TestJournalTwoWritersRealCluster(t *testing.T) {
	urls := strings.Split(need(t, "COLDCHAIN_TEST_NATS_CLUSTER_URLS"), ",")
	if len(urls) < 2 {
		t.Fatalf("COLDCHAIN_TEST_NATS_CLUSTER_URLS lists %d servers, want the cluster's three", len(urls))
	}
	cfg := journal.DefaultConfig()
	cfg.Replicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var journals []*journal.Journal
	for i, u := range urls[:2] {
		nc, err := nats.Connect(u)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		t.Logf("writer %d on %s, nats-server %s", i+1, nc.ConnectedUrl(), nc.ConnectedServerVersion())
		j, err := journal.Open(ctx, nc, cfg, t.TempDir(), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- j.Run(runCtx) }()
		defer func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
			j.Close()
		}()
		for !j.IndexReady() {
			time.Sleep(50 * time.Millisecond)
		}
		journals = append(journals, j)
	}

	run := fmt.Sprintf("JW%d", time.Now().UnixNano()%1_000_000_000)
	const n = 900
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		outcome = map[string][]journal.Outcome{}
	)
	// Batch by batch, both writers at once: the closer together the two
	// publishes reach the stream's leader, the likelier the race.
	for seq := 1; seq <= n; seq += 3 {
		entries := make([]journal.Entry, 3)
		for k := range entries {
			r := record.Reading{Shipment: run, Device: run + "-D", Seq: uint64(seq + k), Time: time.Date(2026, 3, 1, 0, 0, seq+k, 0, time.UTC), TempC: 5}
			entries[k] = journal.Entry{Kind: record.KindReading, ID: r.ID(), Subject: journal.SubjectReading(r.Shipment, r.Device),
				Data: r.AppendCanonical(nil), Device: r.Device, Seq: r.Seq}
		}
		for _, j := range journals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := make([]journal.Result, len(entries))
				if err := j.Append(ctx, entries, journal.Meta{Source: "test", Received: time.Now()}, out); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range out {
					outcome[entries[i].ID] = append(outcome[entries[i].ID], r.Outcome)
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	bad := 0
	for id, oc := range outcome {
		if s := fmt.Sprint(oc); s != "[stored duplicate]" && s != "[duplicate stored]" {
			if bad++; bad <= 10 {
				t.Errorf("%s: %v, want stored once and a duplicate once", id, oc)
			}
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stored, ids := 0, map[string]bool{}
	if err := journal.ReadStream(ctx, js, journal.StreamReadings, journal.SubjectReading(run, run+"-D"), func(m journal.Msg) error {
		stored++
		ids[m.ID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if stored != n || len(ids) != n {
		t.Errorf("the stream holds %d readings of the device, %d distinct; %d were appended, each by both writers", stored, len(ids), n)
	}
	t.Logf("%d readings appended by two writers at once: %d stored, %d distinct, %d with other outcomes; conflicts %d and %d",
		n, stored, len(ids), bad, journals[0].Conflicts(), journals[1].Conflicts())
}
