package plus

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
)

type walletJSON struct {
	ID        int64   `json:"id"`
	UserID    int64   `json:"user_id"`
	Balance   int64   `json:"balance"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
	DeletedAt *string `json:"deleted_at"`
}

type newWalletJSON struct {
	OwnerID       int64  `json:"owner_id"`
	Balance       int64  `json:"balance"`
	TotalIncome   int64  `json:"total_income"`
	TotalExpenses int64  `json:"total_expenses"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
}

type currencyJSON struct {
	OwnerID   int64  `json:"owner_id"`
	Type      int    `json:"type"`
	Sum       int64  `json:"sum"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// walletTimes are the wallet's times; a wallet never used shows the user's.
func walletTimes(w *store.Wallet, p *store.Profile) (string, string) {
	if w.Created.IsZero() {
		return formatTime(p.Created), formatTime(p.Created)
	}
	return formatTime(w.Created), formatTime(w.Updated)
}

func renderWallet(w *store.Wallet, p *store.Profile) walletJSON {
	c, u := walletTimes(w, p)
	return walletJSON{ID: p.ID, UserID: p.ID, Balance: w.Wallet, CreatedAt: c, UpdatedAt: u}
}

func renderNewWallet(w *store.Wallet, p *store.Profile) newWalletJSON {
	c, u := walletTimes(w, p)
	return newWalletJSON{OwnerID: p.ID, Balance: w.NewWallet, TotalIncome: w.Totals.NewWalletIncome,
		TotalExpenses: w.Totals.NewWalletExpenses, CreatedAt: c, UpdatedAt: u}
}

func renderCurrency(w *store.Wallet, p *store.Profile) currencyJSON {
	c, u := walletTimes(w, p)
	return currencyJSON{OwnerID: p.ID, Type: 1, Sum: w.Currency, CreatedAt: c, UpdatedAt: u}
}

// orderJSON is one ledger entry as its owner sees it (ThinkSNS plus-pay
// and currency orders): type 1 income, -1 expense; state 1 done, 0 in
// progress, -1 reversed.
type orderJSON struct {
	ID         int64  `json:"id"`
	OwnerID    int64  `json:"owner_id"`
	TargetType string `json:"target_type"`
	TargetID   int64  `json:"target_id"`
	Title      string `json:"title"`
	Body       string `json:"body"`
	Type       int    `json:"type"`
	Currency   *int   `json:"currency,omitempty"`
	Amount     int64  `json:"amount"`
	State      int    `json:"state"`
	CreatedAt  string `json:"created_at"`
	UpdatedAt  string `json:"updated_at"`
}

func renderOrder(e *store.LedgerEntry, owner int64) orderJSON {
	o := orderJSON{ID: e.ID, OwnerID: owner, Title: e.Title, CreatedAt: formatTime(e.Created), UpdatedAt: formatTime(e.Updated)}
	switch e.Kind {
	case store.KindTransfer:
		o.TargetType, o.Amount = "user", e.Amount
		if e.UserID == owner {
			o.Type, o.TargetID = -1, e.To
			o.Body = fmt.Sprintf("transfer to user %d", e.To)
		} else {
			o.Type, o.TargetID = 1, e.UserID
			o.Body = fmt.Sprintf("transfer from user %d", e.UserID)
		}
	default:
		o.TargetType, o.Type, o.Amount, o.Body = "system", 1, e.Amount, "credit"
		if e.Amount < 0 {
			o.Type, o.Amount, o.Body = -1, -e.Amount, "debit"
		}
	}
	if o.Title == "" {
		o.Title = o.Body
	}
	switch e.State {
	case store.StateCompleted:
		o.State = 1
	case store.StateRefunded:
		o.State = -1
	}
	if e.Account == store.AccountCurrency {
		one := 1
		o.Currency = &one
	}
	return o
}

// WalletOrders is GET /plus-pay/orders: the caller's new_wallet ledger.
func (h *Handler) WalletOrders(w http.ResponseWriter, r *http.Request) {
	h.orders(w, r, store.AccountNewWallet)
}

// CurrencyOrders is GET /currency/orders: the caller's currency ledger.
func (h *Handler) CurrencyOrders(w http.ResponseWriter, r *http.Request) {
	h.orders(w, r, store.AccountCurrency)
}

var ordersInput = input{query: []string{"limit", "offset", "after", "action"}}

func (h *Handler) orders(w http.ResponseWriter, r *http.Request, acct store.Account) {
	if _, err := ordersInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	me := callerOf(r).profile
	q := store.LedgerQuery{UserID: me.ID, Account: acct}
	limit, offset, err := parsePage(r, h.defaultLimit, h.maxLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q.Limit, q.Offset = limit, offset
	if s := r.URL.Query().Get("after"); s != "" {
		id, ok := numericID(s)
		if !ok {
			h.fail(w, r, invalid("after", "after must be a positive integer order id"))
			return
		}
		q.BeforeID = id
	}
	switch a := r.URL.Query().Get("action"); a {
	case "", "all":
	case "income", "expenses":
		q.Direction = a
	default:
		h.fail(w, r, invalid("action", "action must be all, income or expenses"))
		return
	}
	// Finish the caller's stalled transfers first, so the list is current.
	if _, err := h.store.RecoverLedger(r.Context(), me.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	entries, _, err := h.store.ListLedger(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]orderJSON, len(entries))
	for i, e := range entries {
		out[i] = renderOrder(e, me.ID)
	}
	writeJSON(w, http.StatusOK, out)
}

// IdempotencyKeyHeader makes a POST /plus-pay/transfer exactly-once.
const IdempotencyKeyHeader = "Idempotency-Key"

// idempotencyKey reads the header: up to 255 printable ASCII characters.
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get(IdempotencyKeyHeader)
	if len(k) > 255 {
		return "", invalid(IdempotencyKeyHeader, "Idempotency-Key may be at most 255 characters")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", invalid(IdempotencyKeyHeader, "Idempotency-Key must be printable ASCII without spaces")
		}
	}
	return k, nil
}

var transferInput = input{body: []string{"user", "amount", "title"}}

// Transfer is POST /plus-pay/transfer {user, amount}: new_wallet money to
// another user, all or nothing, once per Idempotency-Key (a retry with the
// same key answers with the same order and moves nothing).
func (h *Handler) Transfer(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	key, err := idempotencyKey(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	f, err := transferInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	to, okTo := f.integer("user", true, 1, 1<<62)
	amount, _ := f.integer("amount", true, 1, store.MaxAmount)
	title, _ := f.str("title", false, 100)
	if okTo && to == me.ID {
		f.add("user", "you cannot transfer to yourself")
	}
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	e, created, err := h.store.Transfer(r.Context(), store.TransferRequest{
		From: me.ID, To: to, Account: store.AccountNewWallet, Amount: amount, Title: title, Key: key,
	})
	if result := telemetry.WalletResultOf(err, created); err == nil && e.State == store.StateRefunded {
		h.metrics.Wallet(telemetry.WalletTransfer, telemetry.WalletRejected)
	} else {
		h.metrics.Wallet(telemetry.WalletTransfer, result)
	}
	switch {
	case errors.Is(err, store.ErrInsufficientFunds):
		h.fail(w, r, invalid("amount", "balance is too low for this transfer"))
		return
	case errors.Is(err, store.ErrNotFound):
		h.fail(w, r, invalid("user", "user not found"))
		return
	case errors.Is(err, store.ErrIdempotencyMismatch):
		h.fail(w, r, invalid(IdempotencyKeyHeader, "Idempotency-Key was already used for a different transfer"))
		return
	case errors.Is(err, store.ErrInProgress):
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, newError(http.StatusConflict, err.Error()))
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	if e.State == store.StateRefunded {
		h.fail(w, r, invalid("user", "the receiver no longer exists; the amount was returned"))
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/api/v2/plus-pay/orders?after="+strconv.FormatInt(e.ID+1, 10)+"&limit=1")
	writeJSON(w, http.StatusCreated, map[string]any{"message": "transfer completed", "order": renderOrder(e, me.ID)})
}
