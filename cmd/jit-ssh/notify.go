package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/notify"
	"github.com/jit-ssh/jit-ssh/cmd/jit-ssh/internal/config"
)

// newNotifier returns the configured notifier, or nil, and a function that
// delivers what is queued (for at most the post timeout) and stops it.
func newNotifier(cfg *config.Server, log *slog.Logger) (approval.Notifier, func()) {
	n := cfg.Notify
	if n.WebhookURL == "" {
		return nil, func() {}
	}
	timeout := time.Duration(n.Timeout)
	if timeout == 0 {
		timeout = notify.DefaultTimeout
	}
	w, err := notify.NewWebhook(n.WebhookURL, notify.WithTimeout(timeout), notify.WithLogger(log))
	if err != nil { // validated at load
		log.Error("notify.webhook_url unusable; notifications are off", slog.String("error", err.Error()))
		return nil, func() {}
	}
	return w, func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		w.Close(ctx)
	}
}
