module github.com/klaxon-sh/klaxon/lambdas

go 1.26.0
