package minapp

// Wallet administration (beyond the MinApp seeds; owned by the end-user
// dialect's issue): idempotent credits and debits, and the ledger listing.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
)

const (
	maxTransactionTitle = 255
	maxIdempotencyKey   = 255
)

// TransactionBody is POST /v1/wallet/transactions/.
type TransactionBody struct {
	UserID         json.RawMessage `json:"user_id"`
	Account        *string         `json:"account"`
	Amount         json.RawMessage `json:"amount"`
	Title          *string         `json:"title"`
	IdempotencyKey *string         `json:"idempotency_key"`
}

// ParseTransaction validates a transaction body into a store request.
func ParseTransaction(data []byte) (store.AdjustRequest, error) {
	var b TransactionBody
	var req store.AdjustRequest
	if err := httpx.Unmarshal(data, &b); err != nil {
		return req, err
	}
	if len(b.UserID) == 0 || string(b.UserID) == "null" {
		return req, errors.New("user_id is required")
	}
	id, err := strconv.ParseInt(string(b.UserID), 10, 64)
	if err != nil || id < 1 {
		return req, fmt.Errorf("user_id %s is not a user id (a positive integer)", clipRaw(b.UserID))
	}
	req.UserID = id
	if b.Account == nil {
		return req, errors.New("account is required: wallet, new_wallet or currency")
	}
	acct, ok := store.ParseAccount(*b.Account)
	if !ok {
		return req, fmt.Errorf("account %q is not one of wallet, new_wallet, currency", *b.Account)
	}
	req.Account = acct
	if len(b.Amount) == 0 || string(b.Amount) == "null" {
		return req, errors.New("amount is required: a non-zero integer, negative to debit")
	}
	// A JSON integer literal only: no string, no fraction, no exponent.
	amount, err := strconv.ParseInt(string(b.Amount), 10, 64)
	if err != nil {
		return req, fmt.Errorf("amount %s is not an integer", clipRaw(b.Amount))
	}
	if amount == 0 || amount > store.MaxAmount || amount < -store.MaxAmount {
		return req, fmt.Errorf("amount must be a non-zero integer between %d and %d", -store.MaxAmount, store.MaxAmount)
	}
	req.Amount = amount
	if b.Title != nil {
		if utf8.RuneCountInString(*b.Title) > maxTransactionTitle {
			return req, fmt.Errorf("title is longer than %d characters", maxTransactionTitle)
		}
		req.Title = *b.Title
	}
	if b.IdempotencyKey != nil {
		k := *b.IdempotencyKey
		if k == "" || len(k) > maxIdempotencyKey || strings.ContainsFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			return req, fmt.Errorf("idempotency_key must be 1 to %d printable ASCII characters without spaces", maxIdempotencyKey)
		}
		if store.ReservedAdjustKey(k) {
			return req, fmt.Errorf("idempotency_key must not start with %q: imports book opening balances under such keys", "import:")
		}
		req.Key = k
	}
	return req, nil
}

// clipRaw shows at most 40 bytes of a client's JSON value in a message.
func clipRaw(b json.RawMessage) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

type transactionJSON struct {
	ID             int64   `json:"id"`
	Kind           string  `json:"kind"` // "adjust" or "transfer"
	UserID         int64   `json:"user_id"`
	ToUserID       *int64  `json:"to_user_id,omitempty"`
	Account        string  `json:"account"`
	Amount         int64   `json:"amount"`
	Title          string  `json:"title"`
	IdempotencyKey *string `json:"idempotency_key"`
	State          string  `json:"state"`
	CreatedAt      int64   `json:"created_at"`
	UpdatedAt      int64   `json:"updated_at"`
}

func toTransactionJSON(e *store.LedgerEntry) transactionJSON {
	t := transactionJSON{
		ID: e.ID, Kind: e.Kind, UserID: e.UserID, Account: string(e.Account), Amount: e.Amount,
		Title: e.Title, State: e.State, CreatedAt: e.Created.Unix(), UpdatedAt: e.Updated.Unix(),
	}
	if e.Kind == store.KindTransfer {
		to := e.To
		t.ToUserID = &to
	}
	if k, ok := strings.CutPrefix(e.Key, "adjust:"); ok && !strings.HasPrefix(k, "auto:") {
		t.IdempotencyKey = &k
	}
	return t
}

// CreateWalletTransaction is POST /v1/wallet/transactions/: a credit
// (amount > 0) or debit (amount < 0). The same idempotency_key again
// answers with the same entry and changes nothing; a debit beyond the
// balance is refused and changes nothing.
func (h *Handler) CreateWalletTransaction(w http.ResponseWriter, r *http.Request) {
	data, err := httpx.ReadBody(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	req, err := ParseTransaction(data)
	if err != nil {
		badRequest(w, err)
		return
	}
	e, created, err := h.store.Adjust(r.Context(), req)
	op := telemetry.WalletCredit
	if req.Amount < 0 {
		op = telemetry.WalletDebit
	}
	h.Metrics.Wallet(op, telemetry.WalletResultOf(err, created))
	switch {
	case errors.Is(err, store.ErrInsufficientFunds):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("balance of %s is too low for a debit of %d", req.Account, -req.Amount))
		return
	case errors.Is(err, store.ErrBalanceLimit):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the credit would take %s past the largest balance (%d)", req.Account, store.MaxBalance))
		return
	case errors.Is(err, store.ErrIdempotencyMismatch):
		writeError(w, http.StatusBadRequest, "idempotency_key was already used with a different user_id, account or amount")
		return
	case err != nil: // ErrInProgress among them: 409 with Retry-After
		h.storeError(w, r, err, "user")
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	httpx.WriteJSON(w, http.StatusCreated, toTransactionJSON(e))
}

// ListWalletTransactions is GET /v1/wallet/transactions/?user_id=&account=&limit=&offset=,
// newest first.
func (h *Handler) ListWalletTransactions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var lq ListQuery
	var sq store.LedgerQuery
	for _, name := range sortedKeys(q) {
		values := q[name]
		if len(values) != 1 {
			badRequest(w, paramErr(name, "given %d times; give it once", len(values)))
			return
		}
		v := values[0]
		if v == "" {
			badRequest(w, paramErr(name, "empty value"))
			return
		}
		switch name {
		case "limit", "offset":
			if err := parsePaging(&lq, name, v, h.limits); err != nil {
				badRequest(w, err)
				return
			}
		case "user_id":
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id < 1 {
				badRequest(w, paramErr(name, "%q is not a user id (a positive integer)", v))
				return
			}
			sq.UserID = id
		case "account":
			acct, ok := store.ParseAccount(v)
			if !ok {
				badRequest(w, paramErr(name, "%q is not one of wallet, new_wallet, currency", v))
				return
			}
			sq.Account = acct
		default:
			badRequest(w, paramErr(name, "unknown parameter; the transaction list accepts user_id, account, limit and offset"))
			return
		}
	}
	sq.Limit, sq.Offset, sq.Count = lq.Limit, lq.Offset, true
	if sq.Limit == 0 {
		sq.Limit = h.limits.Default
	}
	if sq.UserID != 0 {
		// Finish the user's stalled transfers first, so the list is current.
		if _, err := h.store.RecoverLedger(r.Context(), sq.UserID); err != nil {
			h.storeError(w, r, err, "transactions")
			return
		}
	}
	// One more than the page tells whether another follows.
	sq.Limit++
	entries, total, err := h.store.ListLedger(r.Context(), sq)
	sq.Limit--
	if err != nil {
		h.storeError(w, r, err, "transactions")
		return
	}
	more := int64(len(entries)) > sq.Limit
	if more {
		entries = entries[:sq.Limit]
	}
	body := listBody{Meta: listMeta{Limit: sq.Limit, Offset: sq.Offset, TotalCount: total}, Objects: make([]any, 0, len(entries))}
	body.Meta.Next, body.Meta.Previous = pageLinks(r.URL, sq.Limit, sq.Offset, more)
	for _, e := range entries {
		body.Objects = append(body.Objects, toTransactionJSON(e))
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}
