package process

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/depai/depai/sdk/wire"
)

// clientPlugin is the host side of the go-plugin plugin set: dispensing
// yields the connection and broker, and the instance drives them itself.
type clientPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

type clientConn struct {
	conn   *grpc.ClientConn
	broker *plugin.GRPCBroker
}

func (clientPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("process: the host side serves no plugin")
}

func (clientPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &clientConn{conn: c, broker: b}, nil
}

// hostServer answers a plugin's host_calls (wire.ProcessHost) through the
// LoadSpec's Dispatcher, the same one the WASM transport uses.
type hostServer struct {
	in *instance
}

type hostService interface {
	call(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
}

func (h *hostServer) call(ctx context.Context, req *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	res := h.dispatch(ctx, req.GetValue())
	b, err := json.Marshal(res)
	if err != nil {
		b, _ = json.Marshal(wire.Result{Error: wire.Errorf(wire.CodeInternal, "encode host result: %v", err)})
	}
	return wrapperspb.Bytes(b), nil
}

func (h *hostServer) dispatch(ctx context.Context, req []byte) wire.Result {
	in := h.in
	var call wire.Call
	if err := json.Unmarshal(req, &call); err != nil {
		return result(wire.CodeInvalidArgument, false, "malformed host call envelope: %v", err)
	}
	if n := len(call.Payload); n > in.limits.MaxMessageBytes {
		return result(wire.CodeTooLarge, false, "host call %s: payload of %d bytes exceeds the limit of %d", call.Method, n, in.limits.MaxMessageBytes)
	}
	if in.spec.Host == nil {
		return result(wire.CodeDenied, false, "host call %s: this host grants plugin %q no capabilities", call.Method, in.spec.Name)
	}
	out, werr := in.spec.Host.HostCall(ctx, in.spec.Name, call.Method, call.Payload)
	if werr != nil {
		return wire.Result{Error: werr}
	}
	if len(out) > in.limits.MaxMessageBytes {
		return result(wire.CodeTooLarge, false, "host call %s: reply of %d bytes exceeds the limit of %d", call.Method, len(out), in.limits.MaxMessageBytes)
	}
	return wire.Result{Payload: out}
}

var hostServiceDesc = grpc.ServiceDesc{
	ServiceName: wire.ProcessHostService,
	HandlerType: (*hostService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if icpt == nil {
				return srv.(hostService).call(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: wire.ProcessHost}, func(ctx context.Context, req any) (any, error) {
				return srv.(hostService).call(ctx, req.(*wrapperspb.BytesValue))
			})
		},
	}},
	Metadata: "depai/sdk/wire/process.go",
}
