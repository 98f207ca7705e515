// Command protoschema writes the protobuf field table of the built-in kinds plumb's embedded
// API server serves, read by reflection from the Go types of k8s.io/api (struct tags
// `protobuf:"bytes,3,opt,name=x"` and `json:"x,omitempty"`), as compact JSON for the Rust
// decoder in crates/apiserver/src/protobuf/. With -golden DIR it also writes sample objects
// encoded the way client-go sends them (NAME.pb) next to the JSON a JSON client would send
// (NAME.json), for the decoder's golden tests.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// Types the decoder renders by hand (their Go JSON form is not their field layout), by the
// name the schema gives them.
var specials = map[string]string{
	"apimachinery/pkg/apis/meta/v1.Time":                                             "time",
	"apimachinery/pkg/apis/meta/v1.MicroTime":                                        "microtime",
	"apimachinery/pkg/apis/meta/v1.Duration":                                         "duration",
	"apimachinery/pkg/apis/meta/v1.FieldsV1":                                         "rawjson",
	"apimachinery/pkg/api/resource.Quantity":                                         "quantity",
	"apimachinery/pkg/util/intstr.IntOrString":                                       "intorstring",
	"apimachinery/pkg/runtime.RawExtension":                                          "rawjson",
	"apiextensions-apiserver/pkg/apis/apiextensions/v1.JSON":                         "rawjson",
	"apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrArray":       "schemaorarray",
	"apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrBool":        "schemaorbool",
	"apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrStringArray": "schemaorstringarray",
}

// The field numbers the decoder assumes for the special types that have struct tags; checked
// here so that a changed layout fails generation instead of decoding wrongly.
var specialLayouts = map[string]map[string]int{
	"apimachinery/pkg/apis/meta/v1.Duration":                                         {"Duration": 1},
	"apimachinery/pkg/apis/meta/v1.FieldsV1":                                         {"Raw": 1},
	"apimachinery/pkg/runtime.RawExtension":                                          {"Raw": 1},
	"apimachinery/pkg/util/intstr.IntOrString":                                       {"Type": 1, "IntVal": 2, "StrVal": 3},
	"apiextensions-apiserver/pkg/apis/apiextensions/v1.JSON":                         {"Raw": 1},
	"apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrArray":       {"Schema": 1, "JSONSchemas": 2},
	"apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrBool":        {"Allows": 1, "Schema": 2},
	"apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaPropsOrStringArray": {"Schema": 1, "Property": 2},
}

// Value describes what one protobuf value holds and how it becomes JSON.
type Value struct {
	// string, bytes, bool, int32, int64, uint32, uint64, double, float, message, map
	Type string `json:"t"`
	// message: the schema name of the message type.
	Message string `json:"m,omitempty"`
	// map: the key and value.
	Key *Value `json:"k,omitempty"`
	Val *Value `json:"v,omitempty"`
}

// Field is one field of a message.
type Field struct {
	Number int    `json:"n"`
	JSON   string `json:"j"`
	Value
	// Repeated: a JSON array (scalars may arrive packed or not).
	Repeated bool `json:"r,omitempty"`
	// Pointer: absent means nil (null / omitted), not the zero value.
	Pointer bool `json:"p,omitempty"`
	// OmitEmpty / OmitZero: Go's json options, to drop what a JSON client would not send.
	OmitEmpty bool `json:"oe,omitempty"`
	OmitZero  bool `json:"oz,omitempty"`
	// Inline: the message's fields are merged into the parent JSON object.
	Inline bool `json:"i,omitempty"`
}

// Message is one message type: its fields, or the special rendering it gets.
type Message struct {
	Special string  `json:"special,omitempty"`
	Fields  []Field `json:"fields,omitempty"`
}

// Schema is the file the Rust decoder reads.
type Schema struct {
	Comment  string              `json:"comment"`
	Kinds    map[string]string   `json:"kinds"`
	Messages map[string]*Message `json:"messages"`
}

func typeName(t reflect.Type) string {
	return strings.TrimPrefix(t.PkgPath(), "k8s.io/") + "." + t.Name()
}

type walker struct {
	messages map[string]*Message
}

func (w *walker) describe(t reflect.Type) Value {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return Value{Type: "string"}
	case reflect.Bool:
		return Value{Type: "bool"}
	case reflect.Int32:
		return Value{Type: "int32"}
	case reflect.Int64, reflect.Int:
		return Value{Type: "int64"}
	case reflect.Uint32:
		return Value{Type: "uint32"}
	case reflect.Uint64, reflect.Uint:
		return Value{Type: "uint64"}
	case reflect.Float64:
		return Value{Type: "double"}
	case reflect.Float32:
		return Value{Type: "float"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return Value{Type: "bytes"}
		}
		panic(fmt.Sprintf("a slice %s where a single value belongs (nested repeated fields are not supported)", t))
	case reflect.Map:
		k, v := w.describe(t.Key()), w.describe(t.Elem())
		return Value{Type: "map", Key: &k, Val: &v}
	case reflect.Struct:
		w.walk(t)
		return Value{Type: "message", Message: typeName(t)}
	}
	panic(fmt.Sprintf("unsupported Go type %s", t))
}

func (w *walker) walk(t reflect.Type) {
	name := typeName(t)
	if _, done := w.messages[name]; done {
		return
	}
	msg := &Message{Special: specials[name]}
	w.messages[name] = msg
	if layout, ok := specialLayouts[name]; ok {
		for goName, want := range layout {
			f, found := t.FieldByName(goName)
			if !found {
				panic(fmt.Sprintf("%s has no field %s", name, goName))
			}
			if n := tagNumber(name, f); n != want {
				panic(fmt.Sprintf("%s.%s is protobuf field %d, the decoder expects %d", name, goName, n, want))
			}
		}
	}
	if msg.Special != "" {
		// Walk the message types the special one refers to (JSONSchemaProps).
		for i := 0; i < t.NumField(); i++ {
			ft := t.Field(i).Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" {
				w.walk(ft)
			}
		}
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("protobuf")
		if tag == "" {
			// TypeMeta (inline, not on the wire) and fields marked json:"-".
			continue
		}
		// Only the field number is taken from the tag: its wire-type and label parts are
		// hand-written in places and wrong (ServiceSpec.healthCheckNodePort says "bytes",
		// clusterIPs "opt"); the Go type decides, as the generated marshallers do.
		jsonName, jsonOpts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if jsonName == "-" {
			continue
		}
		// Go's encoding/json promotes the fields of an embedded struct without a JSON name
		// (`VolumeSource json:""`), whatever ",inline" says.
		inline := f.Anonymous && jsonName == ""
		if jsonName == "" {
			jsonName = f.Name
		}
		field := Field{
			Number:    tagNumber(name, f),
			JSON:      jsonName,
			Pointer:   f.Type.Kind() == reflect.Pointer,
			OmitEmpty: hasOpt(jsonOpts, "omitempty"),
			OmitZero:  hasOpt(jsonOpts, "omitzero"),
			Inline:    inline,
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8 {
			// The Go type decides: some hand-written tags say "opt" on repeated fields.
			field.Repeated = true
			ft = ft.Elem()
		}
		field.Value = w.describe(ft)
		msg.Fields = append(msg.Fields, field)
	}
	sort.Slice(msg.Fields, func(i, j int) bool { return msg.Fields[i].Number < msg.Fields[j].Number })
}

func tagNumber(typ string, f reflect.StructField) int {
	parts := strings.Split(f.Tag.Get("protobuf"), ",")
	if len(parts) < 3 {
		panic(fmt.Sprintf("%s.%s: malformed protobuf tag %q", typ, f.Name, f.Tag.Get("protobuf")))
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		panic(fmt.Sprintf("%s.%s: field number %q: %v", typ, f.Name, parts[1], err))
	}
	return n
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func buildSchema() *Schema {
	w := &walker{messages: map[string]*Message{}}
	s := &Schema{
		Comment:  "Generated by tools/protoschema from k8s.io/api v0.37.2 (scripts/gen-protobuf-schema); do not edit.",
		Kinds:    map[string]string{},
		Messages: w.messages,
	}
	for _, k := range servedKinds {
		t := reflect.TypeOf(k.object).Elem()
		w.walk(t)
		s.Kinds[k.apiVersion+"/"+k.kind] = typeName(t)
	}
	return s
}

func main() {
	out := flag.String("schema", "", "write the schema JSON to this file")
	golden := flag.String("golden", "", "write golden NAME.pb / NAME.json pairs into this directory")
	flag.Parse()
	if *out == "" && *golden == "" {
		fmt.Fprintln(os.Stderr, "usage: protoschema -schema FILE | -golden DIR")
		os.Exit(2)
	}
	if *out != "" {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(buildSchema()); err != nil {
			fail(err)
		}
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			fail(err)
		}
	}
	if *golden != "" {
		if err := writeGolden(*golden); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "protoschema:", err)
	os.Exit(1)
}

// writeGolden encodes every sample as client-go does (the protobuf serializer: k8s\0 and a
// runtime.Unknown envelope) and as encoding/json does.
func writeGolden(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, s := range samples() {
		pb, err := encodeProtobuf(s.object)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		// What the API server sees: the object decoded back from protobuf (nil slices where
		// the sample had empty ones, canonical quantities), as encoding/json writes it.
		received, err := decodeProtobuf(pb, s.object)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		js, err := json.Marshal(received)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s.name+".pb"), pb, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, s.name+".json"), append(js, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func decodeProtobuf(pb []byte, like runtime.Object) (runtime.Object, error) {
	var unknown runtime.Unknown
	if err := unknown.Unmarshal(bytes.TrimPrefix(pb, []byte("k8s\x00"))); err != nil {
		return nil, err
	}
	obj := reflect.New(reflect.TypeOf(like).Elem()).Interface().(runtime.Object)
	if err := obj.(interface{ Unmarshal([]byte) error }).Unmarshal(unknown.Raw); err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(like.GetObjectKind().GroupVersionKind())
	return obj, nil
}
