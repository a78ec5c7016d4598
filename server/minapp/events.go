package minapp

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// The delivery log of the events sent to the tenant's backend
// (docs/events.md): GET /v1/events/deliveries/ and the retry of a dead
// entry.

// Delivery statuses as the API names them: an entry still open (its
// change under way) reads as pending.
var deliveryStatuses = []string{store.EventPending, store.EventDelivered, store.EventDead}

// ParseDeliveriesQuery validates GET /v1/events/deliveries/'s parameters.
func ParseDeliveriesQuery(q url.Values, lim Limits) (store.EventQuery, error) {
	var eq store.EventQuery
	var lq ListQuery
	for _, name := range sortedKeys(q) {
		values := q[name]
		if len(values) != 1 {
			return eq, paramErr(name, "given %d times; give it once", len(values))
		}
		v := values[0]
		if v == "" {
			return eq, paramErr(name, "empty value")
		}
		switch name {
		case "limit", "offset":
			if err := parsePaging(&lq, name, v, lim); err != nil {
				return eq, err
			}
		case "event":
			known := false
			for _, t := range v1alpha1.EventTypes() {
				known = known || string(t) == v
			}
			if !known {
				return eq, paramErr(name, "%q is not an event type (%s)", v, eventTypeNames())
			}
			eq.Event = v
		case "status":
			known := false
			for _, s := range deliveryStatuses {
				known = known || s == v
			}
			if !known {
				return eq, paramErr(name, "%q is not a delivery status (pending, delivered or dead)", v)
			}
			eq.State = v
		case "user_id":
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id < 1 {
				return eq, paramErr(name, "%q is not a user id (a positive integer)", v)
			}
			eq.UserID = id
		case "since", "until":
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil || sec < 0 || sec > maxUnixSeconds {
				return eq, paramErr(name, "%q is not a time in unix seconds", v)
			}
			if name == "since" {
				eq.Since = time.Unix(sec, 0)
			} else {
				eq.Until = time.Unix(sec, 0)
			}
		default:
			return eq, paramErr(name, "unknown parameter; the delivery log accepts event, status, user_id, since, until, limit and offset")
		}
	}
	eq.Limit, eq.Offset = lq.Limit, lq.Offset
	if eq.Limit == 0 {
		eq.Limit = lim.Default
	}
	return eq, nil
}

func eventTypeNames() string {
	s := ""
	for i, t := range v1alpha1.EventTypes() {
		if i > 0 {
			s += ", "
		}
		s += string(t)
	}
	return s
}

type attemptJSON struct {
	At         int64   `json:"at"`
	DurationMS int64   `json:"duration_ms"`
	Status     *int    `json:"status"`
	Error      *string `json:"error"`
}

type deliveryJSON struct {
	ID          int64          `json:"id"`
	Event       string         `json:"event"`
	UserID      *int64         `json:"user_id"`
	Status      string         `json:"status"`
	Recovered   bool           `json:"recovered"`
	CreatedAt   int64          `json:"created_at"`
	Data        map[string]any `json:"data"`
	Attempts    int64          `json:"attempts"`
	LastStatus  *int           `json:"last_status"`
	LastError   *string        `json:"last_error"`
	NextAt      *int64         `json:"next_attempt_at"`
	DeliveredAt *int64         `json:"delivered_at"`
	DeadAt      *int64         `json:"dead_at"`
	Log         []attemptJSON  `json:"log"`
}

func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func unixOf(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	u := t.Unix()
	return &u
}

func toDeliveryJSON(e *store.EventEntry) deliveryJSON {
	d := deliveryJSON{ID: e.ID, Event: e.Event, UserID: nonZero(e.UserID), Status: e.State, Recovered: e.Recovered,
		CreatedAt: e.CreatedAt.Unix(), Data: e.Data, Attempts: e.Attempts, LastStatus: nonZero(e.LastStatus),
		LastError: nonZero(e.LastError), DeliveredAt: unixOf(e.DeliveredAt), DeadAt: unixOf(e.DeadAt), Log: []attemptJSON{}}
	if d.Status == store.EventOpen {
		d.Status = store.EventPending
	}
	if d.Data == nil {
		d.Data = map[string]any{}
	}
	if d.Status == store.EventPending {
		next := e.NextAt.Unix()
		d.NextAt = &next
	}
	for _, a := range e.Log {
		d.Log = append(d.Log, attemptJSON{At: a.At.Unix(), DurationMS: a.DurationMS, Status: nonZero(a.Status), Error: nonZero(a.Error)})
	}
	return d
}

// ListDeliveries is GET /v1/events/deliveries/: the outbox with each
// event's delivery state and attempts, newest first, with the total.
func (h *Handler) ListDeliveries(w http.ResponseWriter, r *http.Request) {
	eq, err := ParseDeliveriesQuery(r.URL.Query(), h.limits)
	if err != nil {
		badRequest(w, err)
		return
	}
	entries, total, err := h.store.ListEvents(r.Context(), eq)
	if err != nil {
		h.storeError(w, r, err, "event deliveries")
		return
	}
	more := eq.Offset+int64(len(entries)) < total
	body := listBody{Meta: listMeta{Limit: eq.Limit, Offset: eq.Offset, TotalCount: &total}, Objects: make([]any, 0, len(entries))}
	body.Meta.Next, body.Meta.Previous = pageLinks(r.URL, eq.Limit, eq.Offset, more)
	for i := range entries {
		body.Objects = append(body.Objects, toDeliveryJSON(&entries[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// RetryDelivery is POST /v1/events/deliveries/{id}/retry/: a dead event
// is pending again, with a new day of retries. It may then reach the
// receiver after later events of its user.
func (h *Handler) RetryDelivery(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id", "delivery")
	if !ok {
		return
	}
	e, err := h.store.RetryDeadEvent(r.Context(), id)
	if err != nil {
		h.storeError(w, r, err, fmt.Sprintf("dead event delivery %d", id))
		return
	}
	h.log.Info("dead event retried", "id", id, "event", e.Event)
	httpx.WriteJSON(w, http.StatusOK, toDeliveryJSON(e))
}
