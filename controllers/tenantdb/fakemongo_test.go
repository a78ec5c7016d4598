package tenantdb

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// fakeMongo is a few lines of the MongoDB handshake: it accepts
// connections, records every byte a client sends, and answers each message
// (OP_QUERY isMaster or OP_MSG hello, ping...) with a primary's hello, so
// that a driver that would send something goes on to send it.
type fakeMongo struct {
	addr string

	mu       sync.Mutex
	conns    int
	received bytes.Buffer
	got      chan struct{} // receives once per message
}

func newFakeMongo(t *testing.T) *fakeMongo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMongo{addr: ln.Addr().String(), got: make(chan struct{}, 1024)}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
	return f
}

const (
	opReply = 1
	opQuery = 2004
	opMsg   = 2013
)

func (f *fakeMongo) serve(c net.Conn) {
	defer c.Close()
	hello, _ := bson.Marshal(bson.D{
		{Key: "ok", Value: 1.0}, {Key: "ismaster", Value: true}, {Key: "isWritablePrimary", Value: true},
		{Key: "helloOk", Value: true}, {Key: "minWireVersion", Value: int32(0)}, {Key: "maxWireVersion", Value: int32(21)},
		{Key: "maxBsonObjectSize", Value: int32(16 << 20)}, {Key: "maxMessageSizeBytes", Value: int32(48 << 20)},
		{Key: "maxWriteBatchSize", Value: int32(100000)},
	})
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		size := int(binary.LittleEndian.Uint32(hdr[0:]))
		if size < 16 || size > 48<<20 {
			return
		}
		body := make([]byte, size-16)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		f.mu.Lock()
		f.received.Write(hdr[:])
		f.received.Write(body)
		f.mu.Unlock()
		f.got <- struct{}{}

		var reply []byte
		switch binary.LittleEndian.Uint32(hdr[12:]) {
		case opQuery: // OP_REPLY: flags, cursorID, startingFrom, numberReturned, document
			reply = binary.LittleEndian.AppendUint32(nil, 0)
			reply = binary.LittleEndian.AppendUint64(reply, 0)
			reply = binary.LittleEndian.AppendUint32(reply, 0)
			reply = binary.LittleEndian.AppendUint32(reply, 1)
			reply = append(reply, hello...)
			reply = header(len(reply), hdr, opReply, reply)
		case opMsg: // OP_MSG: flagBits, one kind-0 section
			reply = append(binary.LittleEndian.AppendUint32(nil, 0), 0)
			reply = append(reply, hello...)
			reply = header(len(reply), hdr, opMsg, reply)
		default:
			return
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// header prefixes body with a header answering the request in req.
func header(n int, req [16]byte, op uint32, body []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(16+n))
	out = binary.LittleEndian.AppendUint32(out, 1)
	out = append(out, req[4:8]...) // responseTo: the request's id
	out = binary.LittleEndian.AppendUint32(out, op)
	return append(out, body...)
}

// seen is what the fake received so far: connections and bytes.
func (f *fakeMongo) seen() (int, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns, bytes.Clone(f.received.Bytes())
}
