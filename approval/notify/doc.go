// Package notify tells people about committed request changes where they
// work: Webhook posts each ca.Notification the approval service hands its
// notifier as one Slack-compatible message, queued so that a slow or dead
// receiver never delays a decision. It needs only ca.
package notify
