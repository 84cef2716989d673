package engine

import "time"

// Reason says why a flush notifies or not; it doubles as a metric label.
// These are Alertmanager's notify.NotifyReason values.
type Reason string

// Reasons, as Alertmanager's DedupStage decides them.
const (
	ReasonDoNotNotify    Reason = "do_not_notify"
	ReasonFirst          Reason = "first_notification"
	ReasonNewAlerts      Reason = "new_alerts_in_group"
	ReasonAllResolved    Reason = "all_alerts_resolved"
	ReasonNewResolved    Reason = "new_resolved_alerts"
	ReasonRepeatInterval Reason = "repeat_interval_elapsed"
)

// Notify says whether the reason is to send.
func (r Reason) Notify() bool { return r != ReasonDoNotNotify }

// needsUpdate is Alertmanager's DedupStage.needsUpdate (notify/dedup_stage.go
// in v0.34): given what was last notified for the group and the firing and
// resolved alerts now, decide whether to notify.
func needsUpdate(entry *NflogEntry, firing, resolved map[string]struct{}, sendResolved bool, repeat time.Duration, now time.Time) Reason {
	if entry == nil {
		if len(firing) > 0 {
			return ReasonFirst
		}
		return ReasonDoNotNotify
	}
	if !subset(entry.Firing, firing) {
		if len(entry.Firing) == 0 {
			return ReasonFirst
		}
		return ReasonNewAlerts
	}
	// Notify about all alerts being resolved irrespective of send_resolved,
	// so the firing alerts are cleared from the log.
	if len(firing) == 0 {
		if len(entry.Firing) > 0 {
			return ReasonAllResolved
		}
		return ReasonDoNotNotify
	}
	if sendResolved && !subset(entry.Resolved, resolved) {
		return ReasonNewResolved
	}
	if entry.At.Before(now.Add(-repeat)) {
		return ReasonRepeatInterval
	}
	return ReasonDoNotNotify
}

// subset: is every element of sub in set?
func subset(set []string, sub map[string]struct{}) bool {
	if len(sub) > len(set) {
		return false
	}
	in := make(map[string]struct{}, len(set))
	for _, s := range set {
		in[s] = struct{}{}
	}
	for s := range sub {
		if _, ok := in[s]; !ok {
			return false
		}
	}
	return true
}
