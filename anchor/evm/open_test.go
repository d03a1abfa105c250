package evm

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/crypto"
)

func TestLoadKey(t *testing.T) {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	hexKey := "0x" + strings.ToUpper(hex.EncodeToString(crypto.FromECDSA(k)))
	got, err := loadKey(Config{Key: hexKey})
	if err != nil || !got.Equal(k) {
		t.Fatalf("hex key: %v", err)
	}

	ks := keystore.NewKeyStore(t.TempDir(), keystore.LightScryptN, keystore.LightScryptP)
	acct, err := ks.ImportECDSA(k, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	path := acct.URL.Path
	got, err = loadKey(Config{Keystore: path, Password: "s3cret"})
	if err != nil || !got.Equal(k) {
		t.Fatalf("keystore: %v", err)
	}
	_, err = loadKey(Config{Keystore: path, Password: "wrong"})
	if err == nil || !strings.HasPrefix(err.Error(), "chain.keystore") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong password: %v", err)
	}
	_, err = loadKey(Config{Key: "0xnothex"})
	if err == nil || strings.Contains(err.Error(), "nothex") {
		t.Fatalf("bad key: %v (must not echo the key)", err)
	}
}
