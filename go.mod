module github.com/taskbridge-go/taskbridge

go 1.26

require (
	// coder/websocket is pinned: ws/netconn.go owns the socket's write side,
	// writes the handshake response and data frames itself and accepts from
	// the library only whole, uncompressed control frames, which is what
	// v1.8.15 writes. Before changing this version, run
	//   go test -race -count=10 -run 'Seam|Compression' ./ws
	// (the tests drive the real library and check every byte that reaches
	// the socket). Should a host's build select a newer version that writes
	// differently, connections fail; frames are not corrupted.
	github.com/coder/websocket v1.8.15
	github.com/getkin/kin-openapi v0.153.0
	github.com/go-chi/chi/v5 v5.5.0
	github.com/google/uuid v1.6.0
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	go.yaml.in/yaml/v3 v3.0.5
)

require (
	github.com/go-openapi/jsonpointer v0.22.5 // indirect
	github.com/go-openapi/swag/jsonname v0.25.5 // indirect
	github.com/gorilla/mux v1.8.0 // indirect
	go.yaml.in/yaml/v4 v4.0.0 // indirect
	golang.org/x/text v0.14.0 // indirect
)
