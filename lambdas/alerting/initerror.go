package alerting

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"time"
)

// ExitInitError reports a failed cold start to the Lambda Runtime API
// (POST /2018-06-01/runtime/init/error) and exits. aws-lambda-go has no call
// for this; without it Lambda sees only "Runtime exited" and loses the
// reason, which for these functions is nearly always a bad setting.
func ExitInitError(log *slog.Logger, function string, err error) {
	log.Error(function+": init failed", "err", err)
	if api := os.Getenv("AWS_LAMBDA_RUNTIME_API"); api != "" {
		body, _ := json.Marshal(map[string]any{
			"errorMessage": err.Error(),
			"errorType":    "InitError",
			"stackTrace":   []string{},
		})
		req, rerr := http.NewRequest(http.MethodPost, "http://"+api+"/2018-06-01/runtime/init/error", bytes.NewReader(body))
		if rerr == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
			c := &http.Client{Timeout: 2 * time.Second}
			if resp, perr := c.Do(req); perr == nil {
				resp.Body.Close()
			} else {
				log.Error("report init error", "err", perr)
			}
		}
	}
	os.Exit(1)
}
