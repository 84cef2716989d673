// Package e2etest runs the built bootstrap binaries as real processes under
// a Lambda Runtime API served by the test, against local fakes of every
// peer. It holds only tests.
package e2etest
