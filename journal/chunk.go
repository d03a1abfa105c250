package journal

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A chunk is one JetStream message that holds several records of one
// subject, appended together. Storing records in chunks instead of one
// message each is what lets ingest keep up with the broker: JetStream's
// cost is per message, not per byte (docs/PERFORMANCE.md).
//
// The data of a chunk is one line per record: the record id, one space,
// the record's canonical encoding, a line feed. The canonical encoding
// never holds a raw line feed (RFC 8785 escapes control characters in
// strings), so the lines need no other framing, and `nats stream get`
// shows a chunk a person can read. HeaderRecords gives the count. A
// message without HeaderRecords is a single record whose id is its
// Nats-Msg-Id (alerts are stored that way).
//
// docs/EXACTLY-ONCE.md describes how chunks are deduplicated per record.

// HeaderRecords is set on a chunk: the number of records it holds.
const HeaderRecords = "Coldchain-Records"

// A record's position in the journal is its chunk's stream sequence times
// 2^16 plus its index in the chunk. Positions grow in journal order, so
// every consumer can use them as it used stream sequences: to skip what it
// has seen, and to restart after a snapshot.
const (
	posShift = 16
	// MaxChunkRecords is the most records one chunk holds.
	MaxChunkRecords = 1<<posShift - 1
)

// Position returns the position of the index-th record of the message at
// stream sequence seq.
func Position(seq uint64, index int) uint64 { return seq<<posShift | uint64(index) }

// FirstPosition is the position of the first record a stream can hold.
var FirstPosition = Position(1, 0)

// SplitPosition is the inverse of Position.
func SplitPosition(pos uint64) (seq uint64, index int) {
	return pos >> posShift, int(pos & (1<<posShift - 1))
}

// EndPosition is the position after every record of the message at
// stream sequence seq, whatever their number.
func EndPosition(seq uint64) uint64 { return Position(seq, MaxChunkRecords) }

// Record is one record of a stored message.
type Record struct {
	ID   string
	Data []byte // the canonical encoding; it aliases the message's data
}

// ErrBadChunk is wrapped by Unpack's errors.
var ErrBadChunk = errors.New("malformed chunk")

// Unpack returns the records a stored message holds, in order: a chunk's
// lines, or the message itself. The records' Data alias data.
func Unpack(h nats.Header, data []byte) ([]Record, error) {
	n := h.Get(HeaderRecords)
	if n == "" {
		return []Record{{ID: h.Get(jetstream.MsgIDHeader), Data: data}}, nil
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 || count > MaxChunkRecords {
		return nil, fmt.Errorf("%w: %s %q", ErrBadChunk, HeaderRecords, n)
	}
	recs := make([]Record, 0, count)
	for len(data) > 0 {
		line, rest, ok := bytes.Cut(data, []byte{'\n'})
		if !ok {
			return nil, fmt.Errorf("%w: record %d has no line end", ErrBadChunk, len(recs)+1)
		}
		id, rec, ok := bytes.Cut(line, []byte{' '})
		if !ok || len(id) == 0 || len(rec) == 0 {
			return nil, fmt.Errorf("%w: record %d is not \"<id> <record>\"", ErrBadChunk, len(recs)+1)
		}
		recs = append(recs, Record{ID: string(id), Data: rec[:len(rec):len(rec)]})
		data = rest
	}
	if len(recs) != count {
		return nil, fmt.Errorf("%w: %d records, %s says %d", ErrBadChunk, len(recs), HeaderRecords, count)
	}
	return recs, nil
}

// appendChunkLine adds one record to a chunk's data.
func appendChunkLine(b []byte, id string, data []byte) []byte {
	b = append(b, id...)
	b = append(b, ' ')
	b = append(b, data...)
	return append(b, '\n')
}

// chunkLineLen is the size of a record's line in a chunk.
func chunkLineLen(id string, data []byte) int { return len(id) + len(data) + 2 }

// validChunkLine reports whether a record can be a chunk line: an id
// without spaces or line feeds, and data without line feeds.
func validChunkLine(id string, data []byte) bool {
	return id != "" && len(data) > 0 && !bytes.ContainsAny([]byte(id), " \n") && bytes.IndexByte(data, '\n') < 0
}
