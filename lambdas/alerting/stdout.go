package alerting

import "os"

// stdout is where Lambda collects logs for CloudWatch.
var stdout = os.Stdout
