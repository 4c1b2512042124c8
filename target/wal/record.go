// Package wal is the target's write-ahead log: it makes the protocol core's
// records durable and replays them on restart. Each record is framed with
// its length and a CRC-32C checksum; records are buffered in user space and
// made durable by group commit, one write and one fsync for every record
// queued while the previous sync ran. A torn final record (one the file
// ends inside of, or with a sector of it still zeros) is cut on open;
// any other damage is an error naming the file and offset.
//
// It owns the file format and durability only; it must not interpret the
// protocol (that is target/paxos) or talk to the network.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/paxtest/paxtest/target/paxos"
)

const (
	headerSize = 8        // u32 payload length, u32 CRC-32C of the payload
	maxPayload = 64 << 20 // a frame claiming more is damage, not a record
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errShort means the input ends inside a frame: a torn tail if it is the
// end of the file.
var errShort = errors.New("wal: frame runs past the end of the data")

// AppendFrame encodes r as one frame at the end of buf.
func AppendFrame(buf []byte, r paxos.Record) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, headerSize)...)
	buf = append(buf, byte(r.Type))
	buf = binary.AppendUvarint(buf, r.Ballot.Round)
	buf = binary.AppendUvarint(buf, uint64(r.Ballot.Node))
	buf = binary.AppendUvarint(buf, r.Slot)
	buf = append(buf, byte(r.Entry.Kind))
	buf = binary.AppendUvarint(buf, uint64(len(r.Entry.Data)))
	buf = append(buf, r.Entry.Data...)
	payload := buf[start+headerSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

// DecodeFrame decodes the frame at the start of data and returns the record
// and the frame's size. It returns errShort when data ends inside the frame,
// and another error when the frame is damaged.
func DecodeFrame(data []byte) (paxos.Record, int, error) {
	if len(data) < headerSize {
		return paxos.Record{}, 0, errShort
	}
	n := binary.LittleEndian.Uint32(data)
	sum := binary.LittleEndian.Uint32(data[4:])
	if n > maxPayload {
		return paxos.Record{}, 0, fmt.Errorf("frame length %d exceeds %d", n, maxPayload)
	}
	if uint64(len(data)-headerSize) < uint64(n) {
		return paxos.Record{}, 0, errShort
	}
	payload := data[headerSize : headerSize+int(n)]
	if got := crc32.Checksum(payload, castagnoli); got != sum {
		return paxos.Record{}, 0, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", sum, got)
	}
	r, err := decodePayload(payload)
	if err != nil {
		return paxos.Record{}, 0, err
	}
	return r, headerSize + int(n), nil
}

func decodePayload(p []byte) (paxos.Record, error) {
	var r paxos.Record
	d := decoder{p: p}
	r.Type = paxos.RecordType(d.byte())
	r.Ballot.Round = d.uvarint()
	r.Ballot.Node = paxos.NodeID(d.uvarint())
	r.Slot = d.uvarint()
	r.Entry.Kind = paxos.EntryKind(d.byte())
	size := d.uvarint()
	if d.err == nil && size > uint64(len(d.p)) {
		d.err = fmt.Errorf("entry of %d bytes in a payload with %d left", size, len(d.p))
	}
	if d.err == nil && size > 0 {
		r.Entry.Data = append([]byte(nil), d.p[:size]...)
		d.p = d.p[size:]
	}
	switch {
	case d.err != nil:
		return r, d.err
	case len(d.p) != 0:
		return r, fmt.Errorf("%d stray bytes after the record", len(d.p))
	case r.Type < paxos.RecPromise || r.Type > paxos.RecChosen:
		return r, fmt.Errorf("unknown record type %d", r.Type)
	case r.Entry.Kind > paxos.EntryConfig:
		return r, fmt.Errorf("unknown entry kind %d", r.Entry.Kind)
	}
	return r, nil
}

type decoder struct {
	p   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.p) == 0 {
		d.err = errors.New("record payload truncated")
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.err = errors.New("bad varint in record payload")
		return 0
	}
	d.p = d.p[n:]
	return v
}
