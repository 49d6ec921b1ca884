package taskbridge

import (
	"context"
	"encoding/json"
)

// MetadataTraceContext is the key of task Metadata under which the service
// keeps the create request's propagated context (W3C traceparent and
// tracestate with an OpenTelemetry [Propagator]) as a JSON object of
// strings. Metadata is stored with the task and never sent to clients.
const MetadataTraceContext = "taskbridge.traceContext"

// Propagator carries request-scoped context, such as a trace, from the
// request that creates a task to the code that runs it, which may be in
// another process (River workers, Temporal activities). Its methods have
// the shape of OpenTelemetry's TextMapPropagator over a map; the otel
// module provides one.
//
// With [Config].Propagator set, CreateTask injects the request's context
// into the task's Metadata (under [MetadataTraceContext]), and executors
// call [Service.TaskContext] to extract it into the context they run the
// task with.
type Propagator interface {
	// Inject writes ctx's propagated values into carrier.
	Inject(ctx context.Context, carrier map[string]string)
	// Extract returns ctx with the values read from carrier.
	Extract(ctx context.Context, carrier map[string]string) context.Context
}

// withTraceContext returns metadata (a JSON object) with the propagated
// context of ctx under MetadataTraceContext; a value the client sent under
// that key is replaced, or removed when there is nothing to propagate.
func (s *Service) withTraceContext(ctx context.Context, metadata json.RawMessage) json.RawMessage {
	p := s.cfg.Propagator
	if p == nil {
		return metadata
	}
	carrier := map[string]string{}
	p.Inject(ctx, carrier)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(metadata, &obj); err != nil {
		return metadata
	}
	_, had := obj[MetadataTraceContext]
	if len(carrier) == 0 && !had {
		return metadata
	}
	if obj == nil {
		obj = map[string]json.RawMessage{}
	}
	if len(carrier) == 0 {
		delete(obj, MetadataTraceContext)
	} else {
		obj[MetadataTraceContext], _ = json.Marshal(carrier)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return metadata
	}
	return out
}

// TraceCarrier returns the propagated context stored in a task's Metadata
// by CreateTask (see [Propagator]), or nil.
func TraceCarrier(task Task) map[string]string {
	if len(task.Metadata) == 0 {
		return nil
	}
	var obj struct {
		Carrier map[string]string `json:"taskbridge.traceContext"`
	}
	if json.Unmarshal(task.Metadata, &obj) != nil {
		return nil
	}
	return obj.Carrier
}

// TaskContext returns ctx with the create request's propagated context
// (its trace, with an OpenTelemetry propagator) extracted from the task's
// Metadata, when [Config].Propagator is set and the task carries one;
// otherwise ctx. Executors call it before running a task in a context of
// their own (riverexec and temporalexec do).
func (s *Service) TaskContext(ctx context.Context, task Task) context.Context {
	p := s.cfg.Propagator
	if p == nil {
		return ctx
	}
	c := TraceCarrier(task)
	if len(c) == 0 {
		return ctx
	}
	return p.Extract(ctx, c)
}
