package alerting

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoAPI is the part of the DynamoDB client the heartbeat store uses.
type DynamoAPI interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Item attributes. One item per heartbeat source holds both the last-seen
// time (written by heartbeat) and the outage state (written by deadman), so
// every decision is one conditional update on one item.
const (
	AttrSource    = "source"     // partition key (S)
	AttrLastSeen  = "last_seen"  // N, Unix milliseconds
	AttrExpiresAt = "expires_at" // N, Unix seconds: the table's TTL attribute
	AttrPagedAt   = "paged_at"   // N, Unix milliseconds; present while paged
)

// Beat is one source's stored state.
type Beat struct {
	Source   string
	LastSeen time.Time // zero: never seen
	PagedAt  time.Time // zero: not currently paged
}

// Store keeps heartbeats in a DynamoDB table keyed by AttrSource.
type Store struct {
	DB    DynamoAPI
	Table string
	// TTL is how long an item outlives its last write. DynamoDB then deletes
	// it, so a decommissioned source disappears instead of paging forever.
	TTL time.Duration
}

func (s *Store) ttl() time.Duration {
	if s.TTL <= 0 {
		return 30 * 24 * time.Hour
	}
	return s.TTL
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func key(source string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrSource: str(source)}
}

func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// Record stores at as the source's last-seen time unless a newer one is
// already stored: Lambda instances run concurrently and deliveries arrive out
// of order, and an older timestamp must never hide a newer one. It reports
// whether the item changed.
func (s *Store) Record(ctx context.Context, source string, at time.Time) (bool, error) {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.Table),
		Key:                 key(source),
		UpdateExpression:    aws.String("SET #ls = :ls, #exp = :exp"),
		ConditionExpression: aws.String("attribute_not_exists(#ls) OR #ls < :ls"),
		ExpressionAttributeNames: map[string]string{
			"#ls": AttrLastSeen, "#exp": AttrExpiresAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":ls":  num(at.UnixMilli()),
			":exp": num(at.Add(s.ttl()).Unix()),
		},
	})
	if conditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record heartbeat %q: %w", source, err)
	}
	return true, nil
}

// List returns every stored beat. The table holds one small item per source,
// so a paginated Scan is cheap and needs no index.
func (s *Store) List(ctx context.Context) ([]Beat, error) {
	var (
		beats []Beat
		start map[string]types.AttributeValue
	)
	for page := 0; page < 1000; page++ {
		out, err := s.DB.Scan(ctx, &dynamodb.ScanInput{
			TableName:         aws.String(s.Table),
			ExclusiveStartKey: start,
			ConsistentRead:    aws.Bool(true),
		})
		if err != nil {
			return nil, fmt.Errorf("scan heartbeats: %w", err)
		}
		for _, it := range out.Items {
			b, err := parseBeat(it)
			if err != nil {
				return nil, err
			}
			beats = append(beats, b)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return beats, nil
		}
		start = out.LastEvaluatedKey
	}
	return nil, errors.New("scan heartbeats: too many pages")
}

func parseBeat(it map[string]types.AttributeValue) (Beat, error) {
	var b Beat
	src, ok := it[AttrSource].(*types.AttributeValueMemberS)
	if !ok {
		return b, fmt.Errorf("heartbeat item without %s", AttrSource)
	}
	b.Source = src.Value
	for attr, dst := range map[string]*time.Time{AttrLastSeen: &b.LastSeen, AttrPagedAt: &b.PagedAt} {
		v, ok := it[attr].(*types.AttributeValueMemberN)
		if !ok {
			continue
		}
		ms, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return b, fmt.Errorf("heartbeat %q: %s: %w", b.Source, attr, err)
		}
		*dst = time.UnixMilli(ms)
	}
	return b, nil
}

// lastSeenIs is the condition that the item still has the last-seen time b
// was read with, so a heartbeat that arrived meanwhile wins over a decision
// taken on stale data.
func lastSeenIs(b Beat, vals map[string]types.AttributeValue) string {
	if b.LastSeen.IsZero() {
		return "attribute_not_exists(#ls)"
	}
	vals[":ls"] = num(b.LastSeen.UnixMilli())
	return "#ls = :ls"
}

// ClaimPage marks b's source as paged at now, only if nobody has paged for
// this outage yet and no heartbeat arrived since b was read. Of several
// concurrent deadman runs exactly one gets true: that one pages.
func (s *Store) ClaimPage(ctx context.Context, b Beat, now time.Time) (bool, error) {
	vals := map[string]types.AttributeValue{
		":now": num(now.UnixMilli()),
		":exp": num(now.Add(s.ttl()).Unix()),
	}
	cond := "attribute_not_exists(#pa) AND " + lastSeenIs(b, vals)
	return s.update(ctx, b.Source, "claim page", "SET #pa = :now, #exp = :exp", cond, vals)
}

// ReleasePage undoes ClaimPage after paging failed everywhere, so the next
// scheduled run tries again.
func (s *Store) ReleasePage(ctx context.Context, source string, pagedAt time.Time) error {
	_, err := s.update(ctx, source, "release page", "REMOVE #pa", "#pa = :pa",
		map[string]types.AttributeValue{":pa": num(pagedAt.UnixMilli())})
	return err
}

// ClaimResolve clears the outage of b, only if it is still the one b saw and
// the source is still as fresh as b says. The one run that gets true sends
// the resolve.
func (s *Store) ClaimResolve(ctx context.Context, b Beat) (bool, error) {
	vals := map[string]types.AttributeValue{":pa": num(b.PagedAt.UnixMilli())}
	cond := "#pa = :pa AND " + lastSeenIs(b, vals)
	return s.update(ctx, b.Source, "claim resolve", "REMOVE #pa", cond, vals)
}

// RestorePage undoes ClaimResolve after the resolve reached nobody.
func (s *Store) RestorePage(ctx context.Context, source string, pagedAt time.Time) error {
	_, err := s.update(ctx, source, "restore page", "SET #pa = :pa", "attribute_not_exists(#pa)",
		map[string]types.AttributeValue{":pa": num(pagedAt.UnixMilli())})
	return err
}

func (s *Store) update(ctx context.Context, source, op, expr, cond string, vals map[string]types.AttributeValue) (bool, error) {
	names := map[string]string{"#pa": AttrPagedAt}
	if _, ok := vals[":ls"]; ok || containsLS(cond) {
		names["#ls"] = AttrLastSeen
	}
	if _, ok := vals[":exp"]; ok {
		names["#exp"] = AttrExpiresAt
	}
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.Table),
		Key:                       key(source),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if conditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s %q: %w", op, source, err)
	}
	return true, nil
}

func containsLS(cond string) bool { return strings.Contains(cond, "#ls") }
