package main

import (
	"github.com/klaxon-sh/klaxon/services/ruleset/logql"
	"github.com/klaxon-sh/klaxon/services/ruleset/rulerfile"
)

// exprCheck judges ruler-file expressions with Klaxon's own LogQL checker
// (Loki's module is AGPL and listed as not to be used here). Expressions that
// are clearly PromQL (no stream selector, a metric name before "{", a
// PromQL-only function) are skipped: no PromQL parser is linked.
var exprCheck rulerfile.ExprCheck = logql.Check
