package engine

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchRules reloads the rules when their files change. A valid change is swapped in
// atomically between two event batches (no event is dropped) and keeps the state of the
// rules whose definition did not change; an invalid change keeps the running set and is
// reported in the log, the metrics and /api/v1/rules.
func (e *Engine) watchRules(ctx context.Context) {
	if len(e.cfg.Rules) == 0 {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		e.log.Error("rule reload disabled: cannot watch files", "err", err)
		return
	}
	defer w.Close()
	watched := map[string]bool{}
	watch := func() {
		for _, p := range e.cfg.Rules {
			// Watch folders (editors replace files by renaming) and every folder below.
			_ = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				dir := path
				if !d.IsDir() {
					dir = filepath.Dir(path)
				}
				if !watched[dir] {
					if err := w.Add(dir); err == nil {
						watched[dir] = true
					}
				}
				return nil
			})
		}
	}
	watch()
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Remove|fsnotify.Rename) == 0 {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(e.cfg.ReloadDelay)
			} else {
				timer.Reset(e.cfg.ReloadDelay)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			e.log.Warn("rule watcher", "err", err)
		case <-fire:
			fire = nil
			watch() // new folders
			e.Reload()
		}
	}
}

// Reload loads the rule files again and swaps them in if they are valid. It reports
// whether the new set is running. What changed (rules.Diff: added, removed, reset,
// changed, kept) goes to the log, deviceless_rules_reload_changes_total and
// /api/v1/rules' last_reload.
func (e *Engine) Reload() bool {
	e.reloading.Lock()
	defer e.reloading.Unlock()
	set, err := e.loadRules()
	if err != nil {
		e.metrics.reloads.WithLabelValues("error").Inc()
		e.rulesErr.Store(&reloadStatus{Error: err.Error(), At: e.now()})
		e.log.Error("rule reload failed; the running rules stay", "err", err)
		return false
	}
	d := set.Adopt(e.ruleSet())
	set.SetAgents(e.registry.forRules())
	set.Arm(e.now()) // new and changed schedules run from now; kept ones keep their next run
	e.rules.Store(set)
	e.sched.reloaded()
	e.rulesErr.Store(&reloadStatus{At: e.now(), Diff: &d})
	e.metrics.reloads.WithLabelValues("ok").Inc()
	for change, names := range map[string][]string{"added": d.Added, "removed": d.Removed, "reset": d.Reset, "changed": d.Changed} {
		e.metrics.reloadChanges.WithLabelValues(change).Add(float64(len(names)))
	}
	e.log.Info("rules reloaded", "rules", len(set.Rules), "added", d.Added, "removed", d.Removed, "reset", d.Reset,
		"changed", d.Changed, "kept", len(d.Kept))
	return true
}
