package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"userve.dev/userve/api/v1alpha1"
)

// The event deliveries (GET deliveries/): the delivery log of the events
// sent to the tenant's backend (GET /v1/events/deliveries/, docs/events.md)
// with its filters (event, status, user, created range), paging and
// total; a dead delivery has a Retry button (POST deliveries/{id}/retry,
// the API's retry, audited as retryEventDelivery).

// deliveryStatuses are the statuses the filter offers (the API's).
var deliveryStatuses = []string{"pending", "delivered", "dead"}

// deliveryLimits are the page sizes offered.
var deliveryLimits = []int64{20, 50, 100}

type deliveriesData struct {
	Q          url.Values
	Events     []string
	Statuses   []string
	Webhook    string // the configured URL; "" when events are off
	Deliveries []map[string]any
	Total      int64
	Limits     []int64
	Limit      int64
	From, To   int64
	Prev, Next string
	Problems   []string
}

func (h *Handler) deliveriesPage(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	d := &deliveriesData{Q: q, Statuses: deliveryStatuses, Limits: deliveryLimits, Limit: deliveryLimits[0]}
	for _, t := range v1alpha1.EventTypes() {
		d.Events = append(d.Events, string(t))
	}
	if h.o.Spec != nil && h.o.Spec.Events.Webhook != nil {
		d.Webhook = h.o.Spec.Events.Webhook.URL
	}
	v.Title, v.Data = v.Lang.T("deliveries_title"), d
	var offset int64
	var params url.Values
	d.Limit, offset, params = paging(q, d.Limit)
	for _, k := range []string{"event", "status", "user_id"} {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			params.Set(k, s) // the API names a bad value
		}
	}
	d.Problems = timeRange(q, params, v.Lang)
	if len(d.Problems) > 0 {
		h.render(w, http.StatusBadRequest, "deliveries", v)
		return
	}
	ans := h.call(r, v, http.MethodGet, "/v1/events/deliveries/?"+params.Encode(), nil)
	if !ans.OK() {
		v.Error = ans.Message()
		h.render(w, ans.Status, "deliveries", v)
		return
	}
	d.Deliveries, d.Total = ans.List()
	if len(d.Deliveries) > 0 {
		d.From, d.To = offset+1, offset+int64(len(d.Deliveries))
	}
	page := func(off int64) string { return withOffset(h.base+"/deliveries/", q, off) }
	if offset > 0 {
		d.Prev = page(max(offset-d.Limit, 0))
	}
	if offset+int64(len(d.Deliveries)) < d.Total {
		d.Next = page(offset + d.Limit)
	}
	h.render(w, http.StatusOK, "deliveries", v)
}

// retryDelivery is POST deliveries/{id}/retry: a dead delivery is sent
// again; back to the list it came from.
func (h *Handler) retryDelivery(w http.ResponseWriter, r *http.Request, v *view) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		h.fail(w, r, v, http.StatusNotFound, "err_no_delivery")
		return
	}
	ans := h.call(r, v, http.MethodPost, fmt.Sprintf("/v1/events/deliveries/%d/retry/", id), nil)
	if !ans.OK() {
		h.fail(w, r, v, ans.Status, ans.Message())
		return
	}
	h.backTo(w, r, r.PostFormValue("back"), h.base+"/deliveries/", "done", "delivery_retried")
}
