package alerting

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/klaxon-sh/klaxon/lambdas/internal/fakes"
)

// CreateTestTable makes the heartbeat table the SAM template defines.
func createTable(t *testing.T, db *dynamodb.Client, name string) {
	t.Helper()
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(AttrSource), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(AttrSource), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
}

func TestStoreWithDynalite(t *testing.T) {
	url := fakes.Dynalite(t)
	db := dynamodb.NewFromConfig(awsCfg(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(url) })
	createTable(t, db, "heartbeats")
	s := &Store{DB: db, Table: "heartbeats", TTL: time.Hour}
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	if ok, err := s.Record(ctx, "prod", t0); err != nil || !ok {
		t.Fatalf("first record: %v %v", ok, err)
	}
	if ok, err := s.Record(ctx, "prod", t0.Add(-time.Minute)); err != nil || ok {
		t.Fatalf("older record must not overwrite: %v %v", ok, err)
	}
	if ok, err := s.Record(ctx, "prod", t0.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("newer record: %v %v", ok, err)
	}
	beats, err := s.List(ctx)
	if err != nil || len(beats) != 1 || !beats[0].LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("List = %+v, %v", beats, err)
	}
	item, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("heartbeats"), Key: key("prod")})
	if err != nil {
		t.Fatal(err)
	}
	if exp := item.Item[AttrExpiresAt].(*types.AttributeValueMemberN).Value; exp != "1772370060" { // t0+1m+1h
		t.Errorf("expires_at = %s", exp)
	}

	b := beats[0]
	now := t0.Add(10 * time.Minute)
	if won, err := s.ClaimPage(ctx, b, now); err != nil || !won {
		t.Fatalf("claim page: %v %v", won, err)
	}
	if won, _ := s.ClaimPage(ctx, b, now.Add(time.Minute)); won {
		t.Fatal("a second claim for the same outage must lose")
	}
	if err := s.ReleasePage(ctx, "prod", now); err != nil {
		t.Fatal(err)
	}
	if won, _ := s.ClaimPage(ctx, b, now); !won {
		t.Fatal("claim after release must win")
	}
	// A heartbeat arriving between read and resolve-claim wins the race; the
	// claim with the stale view loses.
	beats, _ = s.List(ctx)
	b = beats[0]
	if b.PagedAt.IsZero() {
		t.Fatal("paged_at not stored")
	}
	if _, err := s.Record(ctx, "prod", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if won, _ := s.ClaimResolve(ctx, b); won {
		t.Fatal("resolve claim on a stale view must lose")
	}
	beats, _ = s.List(ctx)
	if won, err := s.ClaimResolve(ctx, beats[0]); err != nil || !won {
		t.Fatalf("resolve claim: %v %v", won, err)
	}
	if err := s.RestorePage(ctx, "prod", beats[0].PagedAt); err != nil {
		t.Fatal(err)
	}
	// A source never seen can be claimed too (expected but absent).
	if won, err := s.ClaimPage(ctx, Beat{Source: "ghost"}, now); err != nil || !won {
		t.Fatalf("claim never-seen: %v %v", won, err)
	}
}
