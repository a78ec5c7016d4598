package report

import (
	"fmt"
	"strings"
)

// Endpoint names shared by the API part and the targets.
const (
	EndpointListV20 = "list v2.0"
	EndpointListV22 = "list v2.2 where"
	// The same list handlers with a filter the store answers from an index
	// (FerretDB pushes the equality down): the server's own list overhead.
	EndpointListOpenID  = "list v2.0 ?openid="
	EndpointWhereOpenID = "list v2.2 where openid"
	EndpointDetail      = "detail"
	EndpointPut         = "custom-field PUT"
	EndpointUserName    = "GET /api/v2/users/{name}"
	EndpointLogin       = "login"
	EndpointCredit      = "wallet credit"
)

// Target thresholds from issue 8.
const (
	MinThroughputRatio = 0.85
	MaxDetailCPUms     = 0.3
	MaxIdleRSSMiB      = 25.0
	MaxAllReadySeconds = 60.0
	MaxResyncWrites    = 0
	MaxOperatorRSSMiB  = 150.0
	// Issue 22: pooled tenants.
	PooledTenantsGoal     = 10000
	MaxPooledReadySeconds = 300.0
	MaxPooledRSSMiB       = 600.0
	throughputTargetGoal  = "≥ 0.85 of driver req/s at every concurrency"
)

// Judge evaluates every target of the issue against r.
func Judge(r *Results) []Target {
	var ts []Target
	for _, ep := range []string{EndpointDetail, EndpointListV20, EndpointListV22, EndpointListOpenID, EndpointWhereOpenID} {
		ts = append(ts, ratioTarget(r.API, ep))
	}
	ts = append(ts, detailCPUTarget(r.API))
	idle := Target{Name: "idle tenant RSS", Goal: fmt.Sprintf("< %.0f MiB", MaxIdleRSSMiB)}
	if r.API != nil && r.API.IdleRSSMiB > 0 {
		idle.Measured = true
		idle.Value = fmt.Sprintf("%.1f MiB", r.API.IdleRSSMiB)
		idle.Met = r.API.IdleRSSMiB < MaxIdleRSSMiB
	}
	ts = append(ts, idle)

	ready := Target{Name: "operator: 1,000 tenants Ready", Goal: fmt.Sprintf("≤ %.0f s", MaxAllReadySeconds)}
	writes := Target{Name: "operator: writes on no-change resync", Goal: "0"}
	rss := Target{Name: "operator peak RSS", Goal: fmt.Sprintf("≤ %.0f MiB", MaxOperatorRSSMiB)}
	if o := r.Operator; o != nil && o.Pool != nil {
		ready = Target{Name: "operator: 10,000 pooled tenants Ready", Goal: fmt.Sprintf("≤ %.0f s", MaxPooledReadySeconds)}
		writes.Name = "operator: writes on no-change resync (pooled)"
		rss = Target{Name: "operator peak RSS (pooled)", Goal: fmt.Sprintf("≤ %.0f MiB", MaxPooledRSSMiB)}
	}
	if o := r.Operator; o != nil {
		maxReady, maxRSS, full := MaxAllReadySeconds, MaxOperatorRSSMiB, true
		if o.Pool != nil {
			maxReady, maxRSS, full = MaxPooledReadySeconds, MaxPooledRSSMiB, o.Tenants >= PooledTenantsGoal
		}
		if o.Tenants > 0 && o.Ready == o.Tenants && o.AllReadySeconds > 0 {
			ready.Measured, ready.Met = true, full && o.AllReadySeconds <= maxReady
			ready.Value = fmt.Sprintf("%.1f s (%d tenants)", o.AllReadySeconds, o.Tenants)
		} else if o.Tenants > 0 && o.CreateSeconds > 0 {
			ready.Measured = true
			ready.Value = fmt.Sprintf("%d of %d Ready when the bench gave up (%.0f s)", o.Ready, o.Tenants, o.AllReadySeconds)
		}
		if o.Resync != nil {
			writes.Measured, writes.Met = true, o.Resync.Writes <= MaxResyncWrites
			writes.Value = fmt.Sprintf("%d", o.Resync.Writes)
		}
		if o.PeakRSSMiB > 0 {
			peak := o.PeakRSSMiB
			if o.Resync != nil && o.Resync.PeakRSSMiB > peak {
				peak = o.Resync.PeakRSSMiB
			}
			rss.Measured, rss.Met = true, peak <= maxRSS
			rss.Value = fmt.Sprintf("%.1f MiB", peak)
		}
	}
	ts = append(ts, ready, writes, rss)
	return append(ts, poolTargets(r.Pool)...)
}

func ratioTarget(a *API, endpoint string) Target {
	t := Target{Name: endpoint + " throughput vs driver", Goal: throughputTargetGoal}
	if a == nil {
		return t
	}
	var parts []string
	met, any, figures := true, false, 0
	firstErr := ""
	for _, c := range a.Cells {
		if c.Endpoint != endpoint {
			continue
		}
		any = true
		if c.Error != "" || c.Driver == nil {
			met = false
			if firstErr == "" {
				firstErr = c.Error
			}
			parts = append(parts, fmt.Sprintf("c=%d: no figure", c.Concurrency))
			continue
		}
		figures++
		parts = append(parts, fmt.Sprintf("%.2f (c=%d)", c.Ratio, c.Concurrency))
		if c.Ratio < MinThroughputRatio {
			met = false
		}
	}
	switch {
	case any && figures == 0:
		// Neither side produced a figure (the store could not answer in
		// time): the ratio is not measurable here, which is not a pass.
		t.Value = "no figure: " + oneLine(firstErr)
	case any:
		t.Measured, t.Met, t.Value = true, met, strings.Join(parts, ", ")
	}
	return t
}

func detailCPUTarget(a *API) Target {
	t := Target{Name: "detail server CPU per request", Goal: fmt.Sprintf("≤ %.1f ms at every concurrency", MaxDetailCPUms)}
	if a == nil {
		return t
	}
	var parts []string
	met, any := true, false
	for _, c := range a.Cells {
		if c.Endpoint != EndpointDetail || c.Error != "" {
			continue
		}
		any = true
		parts = append(parts, fmt.Sprintf("%.3f ms (c=%d)", c.CPUmsPerReq, c.Concurrency))
		if c.CPUmsPerReq > MaxDetailCPUms {
			met = false
		}
	}
	if any {
		t.Measured, t.Met, t.Value = true, met, strings.Join(parts, ", ")
	}
	return t
}
