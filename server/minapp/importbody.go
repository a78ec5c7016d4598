package minapp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Import body limits: MinApp's own batch cap, and a bound on one record
// (a profile with custom fields and up to 10,000 followings fits).
const (
	MaxImportRecords     = 1000
	MaxImportRecordBytes = 256 << 10
	MaxImportBodyBytes   = 32 << 20
)

// ErrTooManyRecords is a body with more than MaxImportRecords records.
var ErrTooManyRecords = fmt.Errorf("a request holds at most %d records; split the file into batches", MaxImportRecords)

// ImportBodyError is a body that is not JSON Lines or a JSON array (400).
type ImportBodyError struct{ Msg string }

func (e *ImportBodyError) Error() string { return e.Msg }

// ReadImportRecords streams the records of an import body: a JSON array of
// objects, or JSON Lines (one object a line). It calls each with every
// record's bytes in order, or with recErr for a record that cannot be
// read (a line that is not JSON, a record over MaxImportRecordBytes),
// which is that record's error and not the batch's. The body is never
// held whole: a line, or one array element, at a time. It returns
// ErrTooManyRecords past max records, an *ImportBodyError for a body that
// is neither shape, and read errors.
func ReadImportRecords(r io.Reader, max int, each func(i int, raw []byte, recErr error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := firstByte(br)
	if errors.Is(err, io.EOF) {
		return &ImportBodyError{"the body is empty: send JSON Lines or a JSON array of records"}
	}
	if err != nil {
		return err
	}
	switch first {
	case '[':
		return readArray(br, max, each)
	case '{':
		return readLines(br, max, each)
	}
	return &ImportBodyError{fmt.Sprintf("the body is not JSON: it starts with %q; send JSON Lines (one object a line) or a JSON array", first)}
}

// firstByte skips a UTF-8 byte order mark and white space and peeks.
func firstByte(br *bufio.Reader) (byte, error) {
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

func readArray(br *bufio.Reader, max int, each func(int, []byte, error)) error {
	dec := json.NewDecoder(br)
	if _, err := dec.Token(); err != nil { // '['
		return &ImportBodyError{"the body is not a JSON array: " + err.Error()}
	}
	i := 0
	for dec.More() {
		if i >= max {
			return ErrTooManyRecords
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			var se *json.SyntaxError
			if !errors.As(err, &se) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				return err // reading failed (e.g. the body is too large)
			}
			return &ImportBodyError{fmt.Sprintf("record %d is not valid JSON (the rest of the array cannot be read): %v", i, err)}
		}
		if len(raw) > MaxImportRecordBytes {
			each(i, nil, fmt.Errorf("record is larger than %d bytes", MaxImportRecordBytes))
		} else {
			each(i, raw, nil)
		}
		i++
	}
	if _, err := dec.Token(); err != nil { // ']'
		return &ImportBodyError{"the JSON array is not closed: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &ImportBodyError{"the body holds something after the JSON array"}
	}
	return nil
}

func readLines(br *bufio.Reader, max int, each func(int, []byte, error)) error {
	i := 0
	for {
		line, tooLong, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) > 0 || tooLong {
			if i >= max {
				return ErrTooManyRecords
			}
			switch {
			case tooLong:
				each(i, nil, fmt.Errorf("record is larger than %d bytes", MaxImportRecordBytes))
			case !json.Valid(trimmed):
				each(i, nil, fmt.Errorf("line %d is not valid JSON", i+1))
			default:
				each(i, trimmed, nil)
			}
			i++
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// readLine reads one line of at most MaxImportRecordBytes; a longer one is
// skipped to its end and reported as tooLong.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxImportRecordBytes {
			tooLong = true
			buf = nil
		} else if !tooLong {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return buf, tooLong, err
	}
}
