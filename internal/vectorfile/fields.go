package vectorfile

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
)

// Fields renders a message's exported fields in the layout files' JSON form
// (proto/testdata/vectors/README.md, "Common conventions"): addresses as text,
// bytes in hex, uint64 in decimal text, enums by name. m is a pointer to a struct.
// proto's vector tests and tools/conformance render with it, so the two agree.
func Fields(m any) map[string]any {
	v := reflect.ValueOf(m).Elem()
	out := map[string]any{}
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); f.IsExported() {
			out[f.Name] = fieldValue(v.Field(i))
		}
	}
	return out
}

func fieldValue(v reflect.Value) any {
	switch x := v.Interface().(type) {
	case netip.AddrPort:
		if !x.IsValid() {
			return ""
		}
		return x.String()
	case []byte:
		return hex.EncodeToString(x)
	case fmt.Stringer:
		if v.Kind() != reflect.Struct {
			return x.String()
		}
	}
	switch v.Kind() {
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			return hex.EncodeToString(b)
		}
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = fieldValue(v.Index(i))
		}
		return out
	case reflect.Struct:
		out := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				out[v.Type().Field(i).Name] = fieldValue(v.Field(i))
			}
		}
		return out
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint64:
		// Decimal text: JSON numbers lose precision above 2^53 in most languages.
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return v.Uint()
	}
	return fmt.Sprint(v.Interface())
}
