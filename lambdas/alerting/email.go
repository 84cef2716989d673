package alerting

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

// SESAPI is the part of the SES v2 client Email uses.
type SESAPI interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, opts ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// Email sends a plain-text message through SES v2 (SendEmail). SES rather
// than SMTP because a Lambda has IAM credentials but no SMTP password.
type Email struct {
	SES  SESAPI
	From string
	To   []string
}

// Name implements Notifier.
func (e *Email) Name() string { return "ses" }

// Notify implements Notifier.
func (e *Email) Notify(ctx context.Context, n *Notice) error {
	subject := Truncate(oneLine(fmt.Sprintf("[%s] %s", n.Title(), n.Summary)), 200)
	_, err := e.SES.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(e.From),
		Destination:      &types.Destination{ToAddresses: e.To},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: &types.Content{Data: aws.String(subject), Charset: aws.String("UTF-8")},
			Body:    &types.Body{Text: &types.Content{Data: aws.String(n.Text()), Charset: aws.String("UTF-8")}},
		}},
	})
	if err != nil {
		return fmt.Errorf("ses: send email: %w", err)
	}
	return nil
}
