package migration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one tenant's management API.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Token   string // an admin token
	HTTP    *http.Client
	// Retries of a batch the tenant could not take (503, connection
	// errors); a retried batch is idempotent on the server.
	Retries int
}

// NewHTTPClient is the CLI's HTTP client. It bounds the wait for an
// answer's headers (an import batch answers once it is written, within
// the server's 5 minutes), never a whole exchange: an export streams for
// as long as the tenant is large.
func NewHTTPClient(headerTimeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = headerTimeout
	return &http.Client{Transport: t}
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Result is one record's line of an import answer.
type Result struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	UserID int64  `json:"user_id,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Answer is the tenant's answer to one batch.
type Answer struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	Skipped int `json:"skipped"`
	Errors  int `json:"errors"`
	// WeakHashes: records whose password hash is below OWASP's minimums
	// (kept, and replaced at the user's first login).
	WeakHashes int      `json:"weak_hashes"`
	Results    []Result `json:"results"`
}

// APIError is an answer other than 200.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string { return fmt.Sprintf("tenant answered %d: %s", e.Status, e.Msg) }

func (c *Client) url(path string, q url.Values) string {
	return strings.TrimRight(c.BaseURL, "/") + path + "?" + q.Encode()
}

// ImportBatch sends records (one JSON object each) as JSON Lines.
func (c *Client) ImportBatch(ctx context.Context, format, policy string, dryRun bool, records [][]byte) (*Answer, error) {
	q := url.Values{"format": {format}, "on_conflict": {policy}}
	if dryRun {
		q.Set("dry_run", "1")
	}
	body := bytes.Join(records, []byte("\n"))
	var last error
	for attempt := 0; attempt <= c.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/userve/v1/import/users/", q), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		res, err := c.http().Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = err
			continue
		}
		data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
		_ = res.Body.Close()
		if err != nil {
			last = err
			continue
		}
		if res.StatusCode == http.StatusServiceUnavailable || res.StatusCode == http.StatusBadGateway || res.StatusCode == http.StatusGatewayTimeout {
			last = &APIError{res.StatusCode, errorMessage(data)}
			continue
		}
		if res.StatusCode != http.StatusOK {
			return nil, &APIError{res.StatusCode, errorMessage(data)}
		}
		var a Answer
		if err := json.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("the tenant's answer is not an import answer: %w", err)
		}
		if len(a.Results) != len(records) {
			return nil, fmt.Errorf("the tenant answered %d results for %d records", len(a.Results), len(records))
		}
		return &a, nil
	}
	return nil, fmt.Errorf("batch failed after %d attempts: %w", c.Retries+1, last)
}

func errorMessage(data []byte) string {
	var m struct {
		ErrorMsg string `json:"error_msg"`
	}
	if json.Unmarshal(data, &m) == nil && m.ErrorMsg != "" {
		return m.ErrorMsg
	}
	if len(data) > 200 {
		data = data[:200]
	}
	return strings.TrimSpace(string(data))
}

// Export streams the tenant's export into w, calling onRecord per line.
func (c *Client) Export(ctx context.Context, where string, withHash bool, w io.Writer, onRecord func()) error {
	q := url.Values{}
	if where != "" {
		q.Set("where", where)
	}
	if withHash {
		q.Set("include", "password_hash")
	}
	res, err := c.startExport(ctx, q)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	rr := NewRecordReader(res.Body)
	for {
		raw, bad, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if bad != nil {
			return fmt.Errorf("the export stream is broken: %v", bad)
		}
		if bytes.HasPrefix(raw, []byte(`{"_error":`)) {
			var e struct {
				Error string `json:"_error"`
			}
			_ = json.Unmarshal(raw, &e)
			return errors.New(e.Error)
		}
		if _, err := w.Write(append(raw, '\n')); err != nil {
			return err
		}
		if onRecord != nil {
			onRecord()
		}
	}
}

// startExport asks for the export until the tenant starts streaming it. A
// replica streaming its maximum of exports (429) or away (503) says when
// to come back in Retry-After; the client waits that long (at most a
// minute) up to Retries times.
func (c *Client) startExport(ctx context.Context, q url.Values) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/userve/v1/export/users/", q), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		res, err := c.http().Do(req)
		if err != nil {
			return nil, err
		}
		if res.StatusCode == http.StatusOK {
			return res, nil
		}
		data, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		_ = res.Body.Close()
		apiErr := &APIError{res.StatusCode, errorMessage(data)}
		if (res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusServiceUnavailable) || attempt >= c.Retries {
			return nil, apiErr
		}
		wait := time.Duration(attempt+1) * time.Second
		if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && secs >= 0 {
			wait = min(time.Duration(secs)*time.Second, time.Minute)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}
