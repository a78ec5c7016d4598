package server

import (
	"context"
	"time"
)

// LedgerSweepEvery is how often a running server finishes stalled ledger
// entries (transfers and management adjustments whose process died) and
// cut-off deletions: one sweep per server, whichever dialects are on.
const LedgerSweepEvery = time.Minute

// Start runs the server-wide background work until ctx ends or Close: it
// creates the store's indexes when they are not there yet (retrying while
// MongoDB is away, so the server answers /healthz without a store),
// finishes the wallet movements a crashed process left half-done, expires
// old audit entries, calls Options.Started, then sweeps the ledger every
// Options.LedgerSweep; and it runs the event delivery worker when the
// tenant has spec.events.webhook. Start returns at once; a second call does nothing.
// Run and Serve call it; a pool calls it after New.
func (s *Server) Start(ctx context.Context) {
	s.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(ctx)
		s.stopBackground = cancel
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			s.runBackground(ctx)
		}()
		// The event worker (events.go) waits for the store by itself.
		s.startEvents(ctx)
	})
}

// Close stops the background work and waits for it to end, and drops the
// idle connections of the tenant's outbound clients. The store is the
// caller's to close, afterwards. A Start after Close does nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.startOnce.Do(func() {}) // no background from now on
		if s.stopBackground != nil {
			s.stopBackground()
		}
		s.stopEvents()
		s.background.Wait()
		if c := s.plusOptions.WeChatHTTP; c != nil {
			c.CloseIdleConnections()
		}
	})
}

func (s *Server) runBackground(ctx context.Context) {
	if s.store == nil {
		return // a server built for its OpenAPI documents
	}
	s.ensureIndexes(ctx)
	s.recoverLedger(ctx)
	s.expireAudit(ctx)
	if s.started != nil && s.store.Ready() {
		s.started()
	}
	s.background.Add(1) // runBackground's own count is held: Close waits for both
	go func() {
		defer s.background.Done()
		s.watchQuiet(ctx)
	}()
	t := time.NewTicker(s.ledgerSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !s.store.Indexed() {
				s.retryIndexes(ctx)
			}
			s.sweepLedger(ctx)
		}
	}
}

// sweepLedger finishes the ledger entries whose lease ran out (their
// process died) and the deletions cut off half-way (their user's token is
// dead, so nobody would retry them). Balance reads and retries finish their
// own entries at once; this is for the ones nobody asks about.
func (s *Server) sweepLedger(ctx context.Context) {
	if !s.store.Ready() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, LedgerRecoveryTimeout)
	defer cancel()
	if n, err := s.store.RecoverLedger(ctx, 0); err != nil {
		s.log.Warn("ledger recovery failed; retried later", "error", err)
	} else if n > 0 {
		s.log.Info("ledger recovery finished stalled entries", "entries", n)
	}
	if n, err := s.store.FinishDeletions(ctx); err != nil {
		s.log.Warn("finishing cut-off deletions failed; retried later", "error", err)
	} else if n > 0 {
		s.log.Info("finished cut-off deletions", "users", n)
	}
}

// ensureIndexes retries store.EnsureIndexes with backoff until it succeeds
// (a pool's activation made only the unique ones: the rest are made here).
// A store already ready (its unique indexes exist, so it serves) is not
// held up by one that fails: the start-up duties go on, and each ledger
// sweep tries the indexes again (retryIndexes).
func (s *Server) ensureIndexes(ctx context.Context) {
	delay := 500 * time.Millisecond
	for !s.store.Indexed() {
		err := s.store.EnsureIndexes(ctx)
		if err == nil {
			s.log.Info("store indexes ready")
			return
		}
		if s.store.Ready() {
			s.log.Warn("creating store indexes failed; the store serves on its unique indexes, retried at each ledger sweep", "error", err)
			return
		}
		s.log.Warn("creating store indexes failed; retrying", "error", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 15*time.Second)
	}
}

// retryIndexes tries the indexes once more (a sweep's turn).
func (s *Server) retryIndexes(ctx context.Context) {
	if err := s.store.EnsureIndexes(ctx); err != nil {
		s.log.Warn("creating store indexes failed; retried at the next ledger sweep", "error", err)
		return
	}
	s.log.Info("store indexes ready")
}

// expireAudit deletes, once at start, the audit entries past retention;
// afterwards about one admin action in fifty does it (store.MaybeExpireAudit).
func (s *Server) expireAudit(ctx context.Context) {
	if !s.store.Ready() {
		return
	}
	n, err := s.store.ExpireAudit(ctx, s.store.Now().Add(-s.auditRetention))
	if err != nil {
		s.log.Warn("audit log expiry at start failed; admin actions retry it", "error", err)
		return
	}
	s.log.Info("audit log expiry at start done", "deleted", n, "retention_days", int(s.auditRetention.Hours()/24))
}

// recoverLedger finishes, once at start, the ledger entries (transfers and
// management adjustments) that a crashed process left half-done, so money
// in flight does not wait for an end-user request to come by. Readiness does
// not wait for it. Entries whose lease still runs belong to a live replica
// (or to the crashed one, until the lease ends) and are left to the
// periodic sweep.
func (s *Server) recoverLedger(ctx context.Context) {
	if !s.store.Ready() {
		return // shutting down before the store was ever ready
	}
	ctx, cancel := context.WithTimeout(ctx, LedgerRecoveryTimeout)
	defer cancel()
	start := time.Now()
	n, err := s.store.RecoverLedger(ctx, 0)
	if err != nil {
		s.log.Warn("ledger recovery at start failed; the periodic sweep retries", "error", err, "finished", n)
		return
	}
	s.log.Info("ledger recovery at start done", "finished", n, "duration_ms", time.Since(start).Milliseconds())
}
