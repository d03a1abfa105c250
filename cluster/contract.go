package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket is the KV bucket of the cluster's durable facts: the anchor
// contract every member anchors to. It keeps history and never expires.
const StateBucket = "coldchain_cluster"

const contractKey = "anchor.contract"

// ContractRecord is the anchor contract of the cluster: the first member
// that opened a chain without chain.contract set records the one it uses
// (deployed or remembered); the others anchor to it too, so that every
// epoch, whoever cuts it, is on one contract.
type ContractRecord struct {
	ChainID  uint64 `json:"chain_id"`
	Contract string `json:"contract"`
	Member   string `json:"member"`
}

// State is the cluster's durable facts.
type State struct{ kv jetstream.KeyValue }

// OpenState opens the state bucket, creating it.
func OpenState(ctx context.Context, js jetstream.JetStream, replicas int) (*State, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: StateBucket, Description: "coldchain cluster state: the anchor contract",
		History: 8, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the cluster state bucket %s: %w", StateBucket, err)
	}
	return &State{kv: kv}, nil
}

// Contract returns the recorded anchor contract; ok is false when none
// is.
func (s *State) Contract(ctx context.Context) (rec ContractRecord, ok bool, err error) {
	ok, err = s.get(ctx, contractKey, &rec)
	return rec, ok, err
}

// get reads the JSON record at key into v; ok is false when there is
// none.
func (s *State) get(ctx context.Context, key string, v any) (ok bool, err error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return false, fmt.Errorf("%s in %s is unreadable: %w", key, StateBucket, err)
	}
	return true, nil
}

// ClaimContract records rec as the cluster's anchor contract unless one
// is recorded already, and returns the one recorded.
func (s *State) ClaimContract(ctx context.Context, rec ContractRecord) (ContractRecord, error) {
	b, _ := json.Marshal(rec)
	_, err := s.kv.Create(ctx, contractKey, b)
	if err == nil {
		return rec, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return ContractRecord{}, err
	}
	got, ok, err := s.Contract(ctx)
	if err != nil || !ok {
		return ContractRecord{}, fmt.Errorf("reading the recorded anchor contract: %v", err)
	}
	return got, nil
}

// SameContract reports whether two contract addresses are the same.
func SameContract(a, b string) bool { return strings.EqualFold(a, b) }

// ForgetContract deletes the record, with the step log, when an operator
// starts anchoring anew (coldchain cluster reset-steps): the next
// anchorer records its own contract. It returns the record it deleted.
func (s *State) ForgetContract(ctx context.Context) (ContractRecord, bool, error) {
	rec, ok, err := s.Contract(ctx)
	if err != nil || !ok {
		return rec, ok, err
	}
	return rec, true, s.kv.Purge(ctx, contractKey)
}
