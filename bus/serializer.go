package bus

import "encoding/json"

// Serializer turns message values into bodies and back.
type Serializer interface {
	// ContentType names the encoding, e.g. "application/json".
	ContentType() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer.
	Unmarshal(data []byte, v any) error
}

// JSON is the default serializer.
type JSON struct{}

// ContentType is "application/json".
func (JSON) ContentType() string { return "application/json" }

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
