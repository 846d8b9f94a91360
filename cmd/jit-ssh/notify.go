package main

import (
	"context"
	"log/slog"
	"net/url"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/notify"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// maxNotifyTimeout bounds notify.timeout.
const maxNotifyTimeout = time.Minute

// validate checks the notify block; the webhook URL is never echoed, it
// may hold a secret.
func (n NotifyConfig) validate() []string {
	var p []string
	if n.WebhookURL != "" {
		u, err := url.Parse(n.WebhookURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			p = append(p, "notify.webhook_url: not an http(s) URL")
		case !api.SecureTransport(u):
			p = append(p, "notify.webhook_url: must be https (plain http is allowed only to a loopback address)")
		}
	}
	if n.Timeout < 0 || time.Duration(n.Timeout) > maxNotifyTimeout {
		p = append(p, "notify.timeout: must be between 0 (default 5s) and "+maxNotifyTimeout.String())
	}
	return p
}

// newNotifier returns the configured notifier, or nil, and a function that
// delivers what is queued (for at most the post timeout) and stops it.
func newNotifier(cfg *Config, log *slog.Logger) (approval.Notifier, func()) {
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
