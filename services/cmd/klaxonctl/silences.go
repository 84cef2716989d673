package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/alertmanager/pkg/labels"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

func registerSilences(app *kingpin.Application, add func(*kingpin.CmdClause, adminCommand)) {
	sil := app.Command("silence", "Mute alerts for a while, as amtool silence does.").Alias("silences")

	addCmd := sil.Command("add", "Add a silence: klaxonctl silence add alertname=Foo instance=~'web.*' -d 2h -c 'deploy'.")
	var (
		matchers []string
		duration time.Duration
		start    string
		end      string
		author   string
		comment  string
	)
	addCmd.Arg("matchers", "Label matchers the silenced alerts must all match.").Required().StringsVar(&matchers)
	addCmd.Flag("duration", "How long it lasts (ignored with --end).").Short('d').Default("1h").DurationVar(&duration)
	addCmd.Flag("start", "Start time, RFC3339 (default now).").StringVar(&start)
	addCmd.Flag("end", "End time, RFC3339.").StringVar(&end)
	addCmd.Flag("author", "Who creates it.").Short('a').Default(defaultAuthor()).StringVar(&author)
	addCmd.Flag("comment", "Why.").Short('c').StringVar(&comment)
	add(addCmd, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		s := &adminv1.Silence{CreatedBy: author, Comment: comment}
		for _, m := range matchers {
			ms, err := labels.ParseMatchers(m)
			if err != nil {
				return usagef("matcher %q: %v", m, err)
			}
			for _, lm := range ms {
				s.Matchers = append(s.Matchers, toAPIMatcher(lm))
			}
		}
		startAt := time.Now()
		if start != "" {
			t, err := time.Parse(time.RFC3339, start)
			if err != nil {
				return usagef("--start: %v", err)
			}
			startAt = t
			s.StartsAt = timestamppb.New(t)
		}
		endAt := startAt.Add(duration)
		if end != "" {
			t, err := time.Parse(time.RFC3339, end)
			if err != nil {
				return usagef("--end: %v", err)
			}
			endAt = t
		}
		s.EndsAt = timestamppb.New(endAt)
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewSilenceServiceClient(conn).CreateSilence(ctx, &adminv1.CreateSilenceRequest{Silence: s})
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		// Only the id, as amtool prints it, so scripts can capture it.
		fmt.Fprintln(g.stdout, resp.GetSilence().GetId())
		return nil
	})

	list := sil.Command("list", "List silences.").Alias("ls").Alias("query")
	lreq := &adminv1.ListSilencesRequest{}
	list.Arg("matchers", "Only silences with these exact matchers.").StringsVar(&lreq.Matchers)
	list.Flag("expired", "Include expired silences.").BoolVar(&lreq.Expired)
	add(list, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewSilenceServiceClient(conn).ListSilences(ctx, lreq)
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		t := newTable(g.stdout, "ID", "MATCHERS", "STATE", "STARTS", "ENDS", "CREATED BY", "COMMENT")
		for _, s := range resp.GetSilences() {
			t.row(s.GetId(), matcherString(s.GetMatchers()), silenceState(s.GetState()), ts(s.GetStartsAt()), ts(s.GetEndsAt()),
				s.GetCreatedBy(), s.GetComment())
		}
		return t.flush()
	})

	expire := sil.Command("expire", "End silences now.")
	ids := expire.Arg("id", "Silence ids.").Required().Strings()
	add(expire, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		sc := adminv1.NewSilenceServiceClient(conn)
		for _, id := range *ids {
			cctx, cancel := g.call(ctx)
			resp, err := sc.ExpireSilence(cctx, &adminv1.ExpireSilenceRequest{Id: id})
			cancel()
			if err != nil {
				return err
			}
			if g.output == "json" {
				if err := printJSON(g.stdout, resp); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(g.stdout, "expired %s\n", id)
		}
		return nil
	})
}

func defaultAuthor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "klaxonctl"
}

func toAPIMatcher(m *labels.Matcher) *adminv1.Matcher {
	t := adminv1.MatcherType_MATCHER_TYPE_EQUAL
	switch m.Type {
	case labels.MatchNotEqual:
		t = adminv1.MatcherType_MATCHER_TYPE_NOT_EQUAL
	case labels.MatchRegexp:
		t = adminv1.MatcherType_MATCHER_TYPE_REGEXP
	case labels.MatchNotRegexp:
		t = adminv1.MatcherType_MATCHER_TYPE_NOT_REGEXP
	}
	return &adminv1.Matcher{Name: m.Name, Value: m.Value, Type: t}
}

func matcherString(ms []*adminv1.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		op := map[adminv1.MatcherType]string{
			adminv1.MatcherType_MATCHER_TYPE_NOT_EQUAL:  "!=",
			adminv1.MatcherType_MATCHER_TYPE_REGEXP:     "=~",
			adminv1.MatcherType_MATCHER_TYPE_NOT_REGEXP: "!~",
		}[m.GetType()]
		if op == "" {
			op = "="
		}
		parts[i] = fmt.Sprintf("%s%s%q", m.GetName(), op, m.GetValue())
	}
	return strings.Join(parts, " ")
}

func silenceState(s adminv1.SilenceState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SILENCE_STATE_"))
}
