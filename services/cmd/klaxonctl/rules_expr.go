package main

import "github.com/klaxon-sh/klaxon/services/ruleset/rulerfile"

// exprCheck judges ruler-file expressions. No LogQL or PromQL parser is
// linked (Loki's module is AGPL and listed as not to be used here), so
// expressions are checked for presence only.
var exprCheck rulerfile.ExprCheck
