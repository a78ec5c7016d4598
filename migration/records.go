// Package migration is the client side of `userve import` and `userve
// export`: it streams a file of any size to a tenant's bulk import in
// batches (resumable through a checkpoint file, with a progress bar and a
// JSON Lines report of the records that failed), and a tenant's export to
// a file.
package migration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxRecordBytes bounds one record of an input file (the server's limit).
const MaxRecordBytes = 256 << 10

// RecordReader yields the records of a JSON Lines file or a JSON array one
// at a time, never holding the file.
type RecordReader struct {
	br      *bufio.Reader
	dec     *json.Decoder // JSON array mode
	started bool
	array   bool
	line    int
}

// NewRecordReader reads from r.
func NewRecordReader(r io.Reader) *RecordReader {
	return &RecordReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next record's bytes, or io.EOF at the end. A record
// that is not JSON comes back with bad set (it is reported, not sent);
// a broken JSON array is an error (the rest cannot be read).
func (rr *RecordReader) Next() (raw []byte, bad error, err error) {
	if !rr.started {
		rr.started = true
		if b, err := rr.br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
			_, _ = rr.br.Discard(3)
		}
		for {
			b, err := rr.br.ReadByte()
			if err != nil {
				return nil, nil, err
			}
			if b == ' ' || b == '\t' || b == '\r' || b == '\n' {
				continue
			}
			_ = rr.br.UnreadByte()
			switch b {
			case '[':
				rr.array = true
				rr.dec = json.NewDecoder(rr.br)
				if _, err := rr.dec.Token(); err != nil {
					return nil, nil, err
				}
			case '{':
			default:
				return nil, nil, fmt.Errorf("the file is not JSON Lines or a JSON array (it starts with %q)", b)
			}
			break
		}
	}
	if rr.array {
		if !rr.dec.More() {
			return nil, nil, io.EOF
		}
		var m json.RawMessage
		if err := rr.dec.Decode(&m); err != nil {
			return nil, nil, fmt.Errorf("the JSON array breaks off: %w", err)
		}
		if len(m) > MaxRecordBytes {
			return nil, fmt.Errorf("record is larger than %d bytes", MaxRecordBytes), nil
		}
		return compact(m), nil, nil
	}
	for {
		line, err := rr.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, err
		}
		rr.line++
		t := bytes.TrimSpace(line)
		if len(t) > 0 {
			if !json.Valid(t) {
				return nil, fmt.Errorf("line %d is not valid JSON", rr.line), nil
			}
			return compact(t), nil, nil
		}
		if errors.Is(err, io.EOF) {
			return nil, nil, io.EOF
		}
	}
}

func (rr *RecordReader) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := rr.br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > MaxRecordBytes {
			return nil, fmt.Errorf("line %d is larger than %d bytes", rr.line+1, MaxRecordBytes)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return buf, err
	}
}

// compact puts a record on one line (a pretty-printed array element would
// break the JSON Lines the batches are sent as).
func compact(b []byte) []byte {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return append([]byte(nil), b...)
	}
	return out.Bytes()
}
