package alerting

import (
	"errors"
	"net/url"
)

// redactURL strips the URL from a *url.Error: webhook URLs carry their
// credentials in the path, and errors end up in logs.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: "(redacted)", Err: ue.Err}
	}
	return err
}
