module github.com/klaxon-sh/klaxon/e2e

go 1.26.0
