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

func diff(t *testing.T, old, new map[string]any) *pulumirpc.DiffResponse {
	t.Helper()
	resp, err := (&randomProvider{}).Diff(context.Background(), &pulumirpc.DiffRequest{
		OldInputs: inputs(t, checked(t, old)), News: inputs(t, checked(t, new)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// terraform-provider-random's RequiresReplaceIfValuesNotNull on keepers, as pulumi-random 4.21.4 bridges it.
func TestKeepersReplaceOnlyWhenAValueChanges(t *testing.T) {
	base := map[string]any{"length": 32.0, "special": false}
	with := func(keepers map[string]any) map[string]any {
		m := map[string]any{"length": 32.0, "special": false}
		if keepers != nil {
			m["keepers"] = keepers
		}
		return m
	}
	cases := []struct {
		name     string
		old, new map[string]any
		replace  bool
		same     bool
	}{
		{"no keepers either side", base, base, false, true},
		{"same keepers", with(map[string]any{"rotation": "1"}), with(map[string]any{"rotation": "1"}), false, true},
		{"keepers added where there were none", base, with(map[string]any{"rotation": "1"}), true, false},
		{"a keeper's value changes", with(map[string]any{"rotation": "1"}), with(map[string]any{"rotation": "2"}), true, false},
		{"a keeper is removed", with(map[string]any{"rotation": "1", "other": "x"}), with(map[string]any{"rotation": "1"}), true, false},
		{"keepers removed", with(map[string]any{"rotation": "1"}), base, true, false},
		{"a keeper is added", with(map[string]any{"rotation": "1"}), with(map[string]any{"rotation": "1", "other": "x"}), true, false},
		{"an empty map where there was none", base, with(map[string]any{}), false, false},
	}
	for _, c := range cases {
		resp := diff(t, c.old, c.new)
		if c.same {
			if resp.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
				t.Errorf("%s: want no change, got %v", c.name, resp)
			}
			continue
		}
		if resp.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME {
			t.Errorf("%s: want a change, got %v", c.name, resp)
		}
		if replaced := len(resp.GetReplaces()) > 0; replaced != c.replace {
			t.Errorf("%s: replace %v, want %v (%v)", c.name, replaced, c.replace, resp)
		}
	}
}

func TestAnUpdateInPlaceKeepsTheResult(t *testing.T) {
	olds := inputs(t, map[string]any{"length": 8.0, "result": "kept-it!", "bcryptHash": "h"})
	resp, err := (&randomProvider{}).Update(context.Background(), &pulumirpc.UpdateRequest{
		Type: passwordType, Olds: olds, News: inputs(t, map[string]any{"length": 8.0, "keepers": map[string]any{}}),
	})
	if err != nil || resp.GetProperties().AsMap()["result"] != "kept-it!" {
		t.Fatalf("got %v %v", resp, err)
	}
}

func TestKeepersMustBeStrings(t *testing.T) {
	resp, err := (&randomProvider{}).Check(context.Background(), &pulumirpc.CheckRequest{
		Type: passwordType, News: inputs(t, map[string]any{"length": 8.0, "keepers": map[string]any{"rotation": 1.0}}),
	})
	if err != nil || len(resp.GetFailures()) != 1 || resp.GetFailures()[0].GetProperty() != "keepers" {
		t.Fatalf("want a keepers failure, got %v %v", resp.GetFailures(), err)
	}
}
