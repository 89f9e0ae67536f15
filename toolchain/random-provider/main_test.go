package main

import (
	"context"
	"strings"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func inputs(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checked(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	resp, err := (&randomProvider{}).Check(context.Background(), &pulumirpc.CheckRequest{Type: passwordType, News: inputs(t, m)})
	if err != nil || len(resp.GetFailures()) > 0 {
		t.Fatalf("check %v: %v %v", m, err, resp.GetFailures())
	}
	return resp.GetInputs().AsMap()
}

func TestDefaultsAndMinimums(t *testing.T) {
	in := checked(t, map[string]any{"length": 40.0, "special": false, "minUpper": 5.0, "minNumeric": 5.0})
	for i := 0; i < 50; i++ {
		p, err := generate(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 40 || strings.ContainsAny(p, specialChars) {
			t.Fatalf("length or class wrong: %q", p)
		}
		upper, digits := 0, 0
		for _, c := range p {
			switch {
			case c >= 'A' && c <= 'Z':
				upper++
			case c >= '0' && c <= '9':
				digits++
			}
		}
		if upper < 5 || digits < 5 {
			t.Fatalf("minimums not met: %q", p)
		}
	}
}

func TestOverrideSpecialOnly(t *testing.T) {
	in := checked(t, map[string]any{"length": 12.0, "lower": false, "upper": false, "numeric": false, "overrideSpecial": "_"})
	p, err := generate(in)
	if err != nil || p != strings.Repeat("_", 12) {
		t.Fatalf("got %q, %v", p, err)
	}
}

func TestMinimumsLongerThanLengthFail(t *testing.T) {
	resp, err := (&randomProvider{}).Check(context.Background(), &pulumirpc.CheckRequest{
		Type: passwordType, News: inputs(t, map[string]any{"length": 4.0, "minUpper": 3.0, "minLower": 3.0}),
	})
	if err != nil || len(resp.GetFailures()) != 1 {
		t.Fatalf("want one failure, got %v %v", resp.GetFailures(), err)
	}
}

func TestAnyInputChangeReplaces(t *testing.T) {
	old := checked(t, map[string]any{"length": 20.0})
	changed := checked(t, map[string]any{"length": 20.0, "special": false})
	resp, err := (&randomProvider{}).Diff(context.Background(), &pulumirpc.DiffRequest{OldInputs: inputs(t, old), News: inputs(t, changed)})
	if err != nil || resp.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME || strings.Join(resp.GetReplaces(), ",") != "special" {
		t.Fatalf("got %v %v", resp, err)
	}
	same, err := (&randomProvider{}).Diff(context.Background(), &pulumirpc.DiffRequest{OldInputs: inputs(t, old), News: inputs(t, old)})
	if err != nil || same.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("got %v %v", same, err)
	}
}

func TestOtherTypesAreRefused(t *testing.T) {
	if _, err := (&randomProvider{}).Check(context.Background(), &pulumirpc.CheckRequest{Type: "random:index/randomUuid:RandomUuid", News: inputs(t, map[string]any{})}); err == nil {
		t.Fatal("a type the stand-in does not implement must fail, not be faked")
	}
}
