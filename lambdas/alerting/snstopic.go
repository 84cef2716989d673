package alerting

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
)

// SNSAPI is the part of the SNS client Topic uses.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// Topic publishes to an SNS topic, whose subscribers may be SMS numbers,
// email addresses or a voice-calling integration.
type Topic struct {
	SNS      SNSAPI
	TopicARN string
}

// Name implements Notifier.
func (t *Topic) Name() string { return "sns" }

// Notify implements Notifier.
func (t *Topic) Notify(ctx context.Context, n *Notice) error {
	_, err := t.SNS.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(t.TopicARN),
		Subject:  aws.String(snsSubject(fmt.Sprintf("[%s] %s", n.Title(), n.Summary))),
		Message:  aws.String(n.Text()),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"klaxon_key":    {DataType: aws.String("String"), StringValue: aws.String(n.Key)},
			"klaxon_status": {DataType: aws.String("String"), StringValue: aws.String(string(n.Status))},
		},
	})
	if err != nil {
		return fmt.Errorf("sns: publish: %w", err)
	}
	return nil
}

// snsSubject fits SNS's rule for Subject: ASCII, no line breaks or control
// characters, at most 100 characters. Anything else makes Publish fail.
func snsSubject(s string) string {
	var b strings.Builder
	for _, r := range oneLine(s) {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	out := b.String()
	if len(out) > 100 {
		out = out[:97] + "..."
	}
	return out
}
