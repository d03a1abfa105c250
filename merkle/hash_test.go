package merkle

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
)

// mustHex decodes a 64-digit hex string into a Hash or panics.
func mustHex(s string) Hash {
	var h Hash
	if err := h.UnmarshalText([]byte(s)); err != nil {
		panic(err)
	}
	return h
}

// stdLeaves are the leaves of the standard 8-leaf test tree of
// certificate-transparency's merkle_tree_test.cc, reused by
// transparency-dev/merkle (proof/verify_test.go, testonly/constants.go) and
// by every happy-path vector in testdata/rfc6962.
var stdLeaves = [][]byte{
	{},
	{0x00},
	{0x10},
	{0x20, 0x21},
	{0x30, 0x31},
	{0x40, 0x41, 0x42, 0x43},
	{0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57},
	{0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f},
}

// stdRoots[n] is the root of the first n leaves of stdLeaves. Sizes 1 to 8
// are the `roots` table of transparency-dev/merkle proof/verify_test.go;
// size 0 is SHA-256 of the empty string. All nine are reproduced, from the
// RFC 6962 §2.1 definition alone, by
//
//	python3 -c 'import hashlib as h;H=lambda b:h.sha256(b).digest();M=lambda d:H(b"")if not d else H(b"\0"+d[0])if len(d)==1 else(lambda k:H(b"\1"+M(d[:k])+M(d[k:])))(1<<(len(d)-1).bit_length()-1);L=[b"",b"\0",b"\x10",b"\x20\x21",b"\x30\x31",b"\x40\x41\x42\x43",bytes(range(0x50,0x58)),bytes(range(0x60,0x70))];[print(n,M(L[:n]).hex())for n in range(9)]'
var stdRoots = []Hash{
	0: mustHex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
	1: mustHex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
	2: mustHex("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
	3: mustHex("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
	4: mustHex("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
	5: mustHex("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
	6: mustHex("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
	7: mustHex("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
	8: mustHex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
}

func TestHashKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  Hash
		want string // Reproduced by the shell command in the comment.
	}{
		// printf '' | sha256sum
		{"empty root", EmptyRoot(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		// printf '\x00' | sha256sum
		{"leaf of empty data", LeafHash(nil), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
		// printf '\x00\x00' | sha256sum
		{"leaf 0x00", LeafHash([]byte{0x00}), "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"},
		// printf '\x00data' | sha256sum
		{"leaf data", LeafHash([]byte("data")), "0d3aed023148ffd2a259fbd0cdc7fb3cf975658760d3775b82af6f90aacc2dfc"},
		// { printf '\x01'; printf '\x00' | openssl dgst -sha256 -binary; printf '\x00\x00' | openssl dgst -sha256 -binary; } | sha256sum
		{"node", NodeHash(LeafHash(nil), LeafHash([]byte{0x00})), "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"},
		// head -c 2000 /dev/zero | tr '\0' 'x' | { printf '\x00'; cat; } | sha256sum
		{"leaf of 2000 bytes", LeafHash(bytes.Repeat([]byte("x"), 2000)), "305b672c8cf233ea7c907e6fd533ad319f98540bec65c9448b24e151c81da96f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.got.String(); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestStdRoots(t *testing.T) {
	for n, want := range stdRoots {
		d := stdLeaves[:n]
		if got := Hash(refMTH(d)); got != want {
			t.Errorf("reference MTH(size %d) = %s, want %s", n, got, want)
		}
		var tree Tree
		for _, leaf := range d {
			tree.AppendData(leaf)
		}
		if got := tree.Root(); got != want {
			t.Errorf("Tree.Root(size %d) = %s, want %s", n, got, want)
		}
		for _, src := range []NodeSource{leafHashesOf(stdLeaves), NewLevels(leafHashesOf(stdLeaves))} {
			got, err := RootAt(src, uint64(n))
			if err != nil || got != want {
				t.Errorf("RootAt(%T, %d) = %s, %v; want %s", src, n, got, err, want)
			}
		}
	}
}

func TestHashText(t *testing.T) {
	const s = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
	h := mustHex(s)
	if got := h.String(); got != s {
		t.Errorf("String() = %s, want %s", got, s)
	}
	if got, err := h.MarshalText(); err != nil || string(got) != s {
		t.Errorf("MarshalText() = %s, %v; want %s", got, err, s)
	}
	b, err := json.Marshal([]Hash{h})
	if err != nil || string(b) != `["`+s+`"]` {
		t.Errorf("json.Marshal = %s, %v", b, err)
	}
	var back []Hash
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 1 || back[0] != h {
		t.Errorf("json.Unmarshal = %v, %v", back, err)
	}

	for _, tc := range []struct {
		name    string
		text    string
		wantErr error // nil means any error
	}{
		{"empty", "", ErrWrongHashSize},
		{"one-digit-short", s[:63], ErrWrongHashSize},
		{"one-digit-long", s + "0", ErrWrongHashSize},
		{"one-byte-long", s + "00", ErrWrongHashSize},
		{"non-hex-digit", "g" + s[1:], nil},
		{"base64", "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=", ErrWrongHashSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := h
			err := got.UnmarshalText([]byte(tc.text))
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("UnmarshalText(%q) = %v, want %v", tc.text, err, tc.wantErr)
			}
			if got != h {
				t.Errorf("UnmarshalText(%q) changed the hash on error", tc.text)
			}
		})
	}

	upper := mustHex("5DC9DA79A70659A9AD559CB701DED9A2AB9D823AAD2F4960CFE370EFF4604328")
	if upper != h {
		t.Errorf("upper-case hex decoded to %s, want %s", upper, h)
	}
}

func TestParseHash(t *testing.T) {
	raw, _ := hex.DecodeString("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"32-bytes", raw, false},
		{"nil", nil, true},
		{"empty", []byte{}, true},
		{"truncated", raw[:31], true},
		{"trailing-garbage", append(append([]byte(nil), raw...), 0), true},
		{"dont-care", []byte("don't care 1"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHash(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrWrongHashSize) {
					t.Errorf("ParseHash(%d bytes) = %v, want ErrWrongHashSize", len(tc.in), err)
				}
				return
			}
			if err != nil || !bytes.Equal(h[:], tc.in) {
				t.Errorf("ParseHash = %x, %v; want %x", h, err, tc.in)
			}
		})
	}
}
