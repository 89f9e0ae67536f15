// Command pulumi-resource-random is this project's stand-in for the pulumi-random provider on the
// real-engine lane: the Go module proxy serves no version of github.com/pulumi/pulumi-random/provider/v4,
// so the provider cannot be built here. It implements the one resource type the program declares,
// random:index/randomPassword:RandomPassword, with pulumi-random 4.x's inputs, defaults, outputs and
// diff (keepers replace only on a changed or removed value). Real deployments use the real provider; see README "Tested versions".
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Version is the pulumi-random release whose RandomPassword this stand-in reproduces.
const Version = "4.21.4"

const (
	passwordType = "random:index/randomPassword:RandomPassword"
	unknown      = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
	lowerChars   = "abcdefghijklmnopqrstuvwxyz"
	upperChars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	numericChars = "0123456789"
	// pulumi-random's default special characters.
	specialChars = "!@#$%&*()-_=+[]{}<>:?"
)

var boolDefaults = map[string]bool{"lower": true, "upper": true, "numeric": true, "number": true, "special": true}
var intDefaults = []string{"minLower", "minUpper", "minNumeric", "minSpecial"}

type randomProvider struct {
	pulumirpc.UnimplementedResourceProviderServer
}

func main() {
	err := provider.Main("random", func(*provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &randomProvider{}, nil
	})
	if err != nil {
		panic(err)
	}
}

func (p *randomProvider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (p *randomProvider) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: fmt.Sprintf(`{"name":"random","version":%q}`, Version)}, nil
}

func (p *randomProvider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *randomProvider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *randomProvider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{SupportsPreview: true}, nil
}

func (p *randomProvider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func checkType(t string) error {
	if t != passwordType {
		return fmt.Errorf("this stand-in random provider implements only %s, not %s", passwordType, t)
	}
	return nil
}

// Check applies pulumi-random's defaults and validates the requested shape of the password.
func (p *randomProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.GetType()); err != nil {
		return nil, err
	}
	inputs := req.GetNews().AsMap()
	for k, v := range boolDefaults {
		if _, ok := inputs[k]; !ok {
			inputs[k] = v
		}
	}
	for _, k := range intDefaults {
		if _, ok := inputs[k]; !ok {
			inputs[k] = float64(0)
		}
	}
	var failures []*pulumirpc.CheckFailure
	if keepers, present := inputs["keepers"]; present && keepers != nil {
		values, isMap := keepers.(map[string]any)
		for _, v := range values {
			if _, isString := v.(string); !isString && v != nil {
				isMap = false
			}
		}
		if !isMap {
			failures = append(failures, &pulumirpc.CheckFailure{Property: "keepers", Reason: "keepers must be a map of strings"})
		}
	}
	length, ok := inputs["length"].(float64)
	if !ok || length < 1 {
		failures = append(failures, &pulumirpc.CheckFailure{Property: "length", Reason: "length must be a number of at least 1"})
	} else {
		sum := 0.0
		for _, k := range intDefaults {
			n, _ := inputs[k].(float64)
			sum += n
		}
		if sum > length {
			failures = append(failures, &pulumirpc.CheckFailure{Property: "length", Reason: "length must be at least the sum of the minimums"})
		}
	}
	news, err := structpb.NewStruct(inputs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: news, Failures: failures}, nil
}

// Diff follows pulumi-random 4.21.4, which bridges terraform-provider-random's random_password (schema v3,
// internal/provider/resource_password.go): every input requires replacement, except that keepers replace only
// through RequiresReplaceIfValuesNotNull (internal/planmodifiers/map/mapplanmodifiers.go) and override_special
// going from "" to unset is an in-place update. A change that replaces nothing is an update that keeps the result.
func (p *randomProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, news := req.GetOldInputs().AsMap(), req.GetNews().AsMap()
	keys := map[string]bool{}
	for k := range olds {
		keys[k] = true
	}
	for k := range news {
		keys[k] = true
	}
	var changed, replaces []string
	for k := range keys {
		a, _ := structpb.NewValue(olds[k])
		b, _ := structpb.NewValue(news[k])
		if protoEqual(a, b) {
			continue
		}
		changed = append(changed, k)
		if replacesOn(k, olds[k], news[k]) {
			replaces = append(replaces, k)
		}
	}
	sort.Strings(changed)
	sort.Strings(replaces)
	if len(changed) == 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
	}
	return &pulumirpc.DiffResponse{
		Changes: pulumirpc.DiffResponse_DIFF_SOME, Diffs: changed, Replaces: replaces,
		DeleteBeforeReplace: false,
	}, nil
}

// replacesOn says whether a changed input forces a new password.
func replacesOn(key string, old, new any) bool {
	switch key {
	case "keepers":
		return keepersReplace(old, new)
	case "overrideSpecial":
		// RequiresReplaceUnlessEmptyStringToNull.
		return !(old == "" && new == nil)
	}
	return true
}

// keepersReplace is RequiresReplaceIfValuesNotNull: a change replaces unless it only adds null values
// (or an empty map where there was none).
func keepersReplace(old, new any) bool {
	oldMap, _ := old.(map[string]any)
	newMap, _ := new.(map[string]any)
	if old == nil {
		for _, v := range newMap {
			if v != nil {
				return true
			}
		}
		return false
	}
	for k, v := range newMap {
		before, ok := oldMap[k]
		if !ok && v == nil {
			continue
		}
		if ok && equalValue(before, v) {
			continue
		}
		return true
	}
	for k := range oldMap {
		if _, ok := newMap[k]; !ok {
			return true
		}
	}
	return false
}

func equalValue(a, b any) bool {
	va, _ := structpb.NewValue(a)
	vb, _ := structpb.NewValue(b)
	return protoEqual(va, vb)
}

func protoEqual(a, b *structpb.Value) bool {
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	return string(ja) == string(jb)
}

func (p *randomProvider) Create(_ context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if err := checkType(req.GetType()); err != nil {
		return nil, err
	}
	state := req.GetProperties().AsMap()
	if req.GetPreview() {
		state["result"], state["bcryptHash"] = unknown, unknown
	} else {
		password, err := generate(state)
		if err != nil {
			return nil, err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return nil, err
		}
		state["result"], state["bcryptHash"] = password, string(hash)
	}
	props, err := structpb.NewStruct(state)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: "none", Properties: props}, nil
}

func (p *randomProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

// Update takes the new inputs and keeps the generated values (the result and its hash are UseStateForUnknown upstream).
func (p *randomProvider) Update(_ context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if err := checkType(req.GetType()); err != nil {
		return nil, err
	}
	state := req.GetNews().AsMap()
	olds := req.GetOlds().AsMap()
	for _, k := range []string{"result", "bcryptHash"} {
		state[k] = olds[k]
	}
	props, err := structpb.NewStruct(state)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

func (p *randomProvider) Delete(context.Context, *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// generate draws each class's minimum first, fills the rest from every allowed class, then shuffles.
func generate(in map[string]any) (string, error) {
	flag := func(k string) bool { v, _ := in[k].(bool); return v }
	count := func(k string) int { v, _ := in[k].(float64); return int(v) }
	special := specialChars
	if s, ok := in["overrideSpecial"].(string); ok && s != "" {
		special = s
	}
	classes := []struct {
		on    bool
		chars string
		min   int
	}{
		{flag("lower"), lowerChars, count("minLower")},
		{flag("upper"), upperChars, count("minUpper")},
		{flag("numeric") && flag("number"), numericChars, count("minNumeric")},
		{flag("special"), special, count("minSpecial")},
	}
	var all string
	var out []byte
	for _, c := range classes {
		if !c.on {
			continue
		}
		all += c.chars
		for i := 0; i < c.min; i++ {
			b, err := pick(c.chars)
			if err != nil {
				return "", err
			}
			out = append(out, b)
		}
	}
	if all == "" {
		return "", fmt.Errorf("every character class is disabled")
	}
	for len(out) < count("length") {
		b, err := pick(all)
		if err != nil {
			return "", err
		}
		out = append(out, b)
	}
	for i := len(out) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", err
		}
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return string(out), nil
}

func pick(chars string) (byte, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
	if err != nil {
		return 0, err
	}
	return chars[n.Int64()], nil
}
